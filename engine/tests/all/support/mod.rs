//! Test helpers: loopback HTTP servers, guest loaders, fixtures.
