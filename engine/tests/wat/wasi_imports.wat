;; What a module built for WASI looks like to ABI v1: refused at load time,
;; with every problem listed.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "log" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")))
