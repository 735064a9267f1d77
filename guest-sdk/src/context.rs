//! [`Context`]: the conversation as a Code block sees it.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::{log, sys};

/// The name of the property the REST API block stores its response body in.
pub const API_RESPONSE: &str = "API Response";

/// The conversation as one run of a Code block sees it: its properties, the
/// messages it sends, its log.
///
/// A `Context` is handed to the block's `run` function by
/// [`code_block!`](crate::code_block); it cannot be created otherwise.
///
/// Reads see the conversation's properties as they were when the run
/// started, plus this run's own writes. Writes ([`set`](Self::set),
/// [`remove`](Self::remove)) and messages ([`send_message`](Self::send_message))
/// are buffered by the host and committed only if the run succeeds: a block
/// that fails halfway leaves the conversation exactly as it found it.
///
/// ```no_run
/// use chatflow_sdk::{Context, Result};
///
/// #[derive(serde::Deserialize)]
/// struct Order {
///     id: String,
///     status: String,
/// }
///
/// fn run(ctx: &mut Context) -> Result<()> {
///     let order: Order = ctx.json("API Response")?;
///     ctx.set("order_status", &order.status)?;
///     ctx.send_message(format!("Order {} is {}.", order.id, order.status))?;
///     Ok(())
/// }
/// # chatflow_sdk::code_block!(run);
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct Context {
    _private: (),
}

impl Context {
    pub(crate) fn new() -> Self {
        Context { _private: () }
    }

    /// The value of property `name`, or `None` if it is not set.
    ///
    /// Names are matched exactly (case and spaces count): `"API Response"`.
    /// One host call for values up to 1 KiB, two for larger ones (the second
    /// copies straight into the returned `String`).
    pub fn get(&self, name: &str) -> Option<String> {
        match sys::read_vec(|buf| sys::property_get(name, buf)) {
            Ok(bytes) => Some(into_string(bytes)),
            Err(sys::NOT_FOUND) => None,
            // `INVALID` is only returned for a name that is not UTF-8, which
            // a `&str` cannot be; anything else is a host bug.
            Err(code) => panic!(
                "property_get({name:?}): unexpected host error {code}: {}",
                sys::last_error_message(code)
            ),
        }
    }

    /// The value of property `name` as bytes, or `None` if it is not set:
    /// for parsers that read bytes (`serde_json::from_slice`, quick-xml's
    /// `Reader::from_reader`).
    ///
    /// The bytes are the property's UTF-8 text, copied once into the
    /// returned `Vec`. Unlike [`get`](Self::get) this does not check them
    /// again, which saves a pass over a large API response (about 0.3 ms
    /// for 600 KB in the sandbox).
    pub fn get_bytes(&self, name: &str) -> Option<Vec<u8>> {
        match sys::read_vec(|buf| sys::property_get(name, buf)) {
            Ok(bytes) => Some(bytes),
            Err(sys::NOT_FOUND) => None,
            // As in `get`: only a non-UTF-8 name gets `INVALID`.
            Err(code) => panic!(
                "property_get({name:?}): unexpected host error {code}: {}",
                sys::last_error_message(code)
            ),
        }
    }

    /// The value of property `name`, or [`Error::MissingProperty`] naming it:
    /// for properties the block cannot work without.
    ///
    /// ```no_run
    /// # use chatflow_sdk::{Context, Result};
    /// fn run(ctx: &mut Context) -> Result<()> {
    ///     let phone = ctx.require("phone")?; // fails the run: "property `phone` is not set"
    ///     # let _ = phone;
    ///     Ok(())
    /// }
    /// # chatflow_sdk::code_block!(run);
    /// # fn main() {}
    /// ```
    pub fn require(&self, name: &str) -> Result<String> {
        self.get(name).ok_or_else(|| Error::MissingProperty {
            name: name.to_string(),
        })
    }

    /// Whether property `name` is set (one host call; nothing is copied).
    pub fn contains(&self, name: &str) -> bool {
        sys::property_get(name, &mut []) >= 0
    }

    /// The `API Response` property: the body of the last REST API block's
    /// response, or `None` if it is not set (no call yet, or the call failed
    /// with *Ignore error* on).
    ///
    /// Reads the length first and then copies once into the returned string,
    /// because responses are usually large.
    pub fn api_response(&self) -> Option<String> {
        match sys::read_vec_sized(|buf| sys::property_get(API_RESPONSE, buf)) {
            Ok(bytes) => Some(into_string(bytes)),
            Err(_) => None,
        }
    }

    /// Sets property `name` to `value`, visible to this run's later reads and
    /// committed if the run succeeds.
    ///
    /// Fails with [`Error::InvalidArgument`] for an invalid name (empty, over
    /// 256 bytes, leading or trailing whitespace, `{`, `}` or control
    /// characters). A value over the operator's size limits ends the run.
    ///
    /// ```no_run
    /// # use chatflow_sdk::{Context, Error, Result};
    /// fn run(ctx: &mut Context) -> Result<()> {
    ///     ctx.set("tier", "gold")?;
    ///     ctx.set("order_count", 3.to_string())?;
    ///     match ctx.set("{bad}", "x") {
    ///         Err(Error::InvalidArgument { message, .. }) => chatflow_sdk::log::warn!("{message}"),
    ///         other => other?,
    ///     }
    ///     Ok(())
    /// }
    /// # chatflow_sdk::code_block!(run);
    /// # fn main() {}
    /// ```
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) -> Result<()> {
        match sys::property_set(name, value.as_ref()) {
            0 => Ok(()),
            code => Err(Error::from_code("set", code)),
        }
    }

    /// Removes property `name` (also fine when it is not set), so that a
    /// later branch on `{{name}} exists` is false. Committed if the run
    /// succeeds. Fails with [`Error::InvalidArgument`] for an invalid name.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        match sys::property_remove(name) {
            0 => Ok(()),
            code => Err(Error::from_code("remove", code)),
        }
    }

    /// Sends a chat message to the user (the platform's *Send Message*
    /// action). Messages are delivered in order, and only if the run
    /// succeeds. Too many messages, or too much text, ends the run.
    pub fn send_message(&mut self, text: impl AsRef<str>) -> Result<()> {
        match sys::message_send(text.as_ref()) {
            0 => Ok(()),
            code => Err(Error::from_code("send_message", code)),
        }
    }

    /// Parses property `prop` as JSON into `T` (any `serde` type), inside
    /// the sandbox.
    ///
    /// Fails with [`Error::MissingProperty`] if it is not set and
    /// [`Error::PropertyJson`] (with line and column) if it is not JSON of
    /// that shape. Use `Option<…>` fields and `#[serde(default)]` for fields
    /// an API may leave out.
    ///
    /// Values up to 1 KiB are parsed straight from a stack buffer (one host
    /// call, no heap copy of the text).
    ///
    /// ```no_run
    /// # use chatflow_sdk::{Context, Error, Result};
    /// #[derive(serde::Deserialize)]
    /// struct Profile {
    ///     name: String,
    ///     email: Option<String>,
    /// }
    ///
    /// fn run(ctx: &mut Context) -> Result<()> {
    ///     let profile: Profile = match ctx.json("API Response") {
    ///         Ok(profile) => profile,
    ///         Err(Error::MissingProperty { .. }) => {
    ///             ctx.send_message("We could not find your profile.")?;
    ///             return Ok(());
    ///         }
    ///         Err(err) => return Err(err),
    ///     };
    ///     ctx.set("name", &profile.name)?;
    ///     if let Some(email) = &profile.email {
    ///         ctx.set("email", email)?;
    ///     }
    ///     Ok(())
    /// }
    /// # chatflow_sdk::code_block!(run);
    /// # fn main() {}
    /// ```
    pub fn json<T: DeserializeOwned>(&self, prop: &str) -> Result<T> {
        match sys::with_bytes(
            |buf| sys::property_get(prop, buf),
            |bytes| serde_json::from_slice::<T>(bytes),
        ) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(Error::PropertyJson {
                name: prop.to_string(),
                source,
            }),
            Err(sys::NOT_FOUND) => Err(Error::MissingProperty {
                name: prop.to_string(),
            }),
            Err(code) => Err(Error::from_code("json", code)),
        }
    }

    /// Parses property `prop` as an untyped [`serde_json::Value`], for
    /// documents whose shape varies. Errors as for [`json`](Self::json).
    pub fn json_value(&self, prop: &str) -> Result<serde_json::Value> {
        self.json(prop)
    }

    /// Picks one value out of JSON property `prop` with an RFC 6901 JSON
    /// pointer, parsed by the host natively (faster than parsing in the
    /// sandbox when only a few fields of a large document are needed; the
    /// parse is cached for the run).
    ///
    /// Returns a string's text unquoted and any other value as its JSON text
    /// as written in the document with the whitespace removed (`42`, `true`,
    /// `{"b":1,"a":1.50e2}`: member order and number spelling are kept);
    /// `Ok(None)` if the property is not set or nothing is at the pointer.
    /// Fails with [`Error::InvalidArgument`] for a pointer that is neither
    /// empty nor starts with `/` or has a `~` not followed by `0` or `1`
    /// (checked first, even if the property is not set), and with
    /// [`Error::NotParseable`] if the property is not JSON.
    ///
    /// ```no_run
    /// # use chatflow_sdk::{Context, Result};
    /// fn run(ctx: &mut Context) -> Result<()> {
    ///     // {"user": {"name": "Ada", "roles": ["admin"]}}
    ///     if let Some(name) = ctx.select_json("API Response", "/user/name")? {
    ///         ctx.set("name", name)?; // Ada
    ///     }
    ///     let first_role = ctx.select_json("API Response", "/user/roles/0")?;
    ///     # let _ = first_role;
    ///     Ok(())
    /// }
    /// # chatflow_sdk::code_block!(run);
    /// # fn main() {}
    /// ```
    pub fn select_json(&self, prop: &str, pointer: &str) -> Result<Option<String>> {
        select(
            "select_json",
            prop,
            sys::read_vec(|buf| sys::json_select(prop, pointer, buf)),
        )
    }

    /// Picks the text of one element (or one attribute) out of XML property
    /// `prop` with a simple path, parsed by the host natively.
    ///
    /// Paths go from the root element down: `/order/items/item[2]/name`
    /// (`[n]` counts matching siblings from 1), with an optional final
    /// attribute step: `/order/@id` or `/order/item@id`. A step without a
    /// prefix matches the local name whatever the namespace prefix; a step
    /// with one (`a:item`) must match exactly; each step picks one element.
    /// The text is all descendant text and CDATA, entities decoded, line
    /// endings normalized to `\n`. The exact rules (entities, namespace
    /// declarations, path syntax) are `xml_select`'s in `docs/abi.md`.
    ///
    /// `Ok(None)` if the property is not set or nothing matches;
    /// [`Error::InvalidArgument`] for bad path syntax; [`Error::NotParseable`]
    /// if the property is not well-formed XML. [`xml::select`](crate::xml::select)
    /// does the same inside the sandbox on any text (for example an HTTP
    /// response body).
    pub fn select_xml(&self, prop: &str, path: &str) -> Result<Option<String>> {
        select(
            "select_xml",
            prop,
            sys::read_vec(|buf| sys::xml_select(prop, path, buf)),
        )
    }

    /// Parses property `prop` as an XML document inside the sandbox and
    /// returns its root element, to walk with [`xml::Element`](crate::xml::Element).
    ///
    /// Fails with [`Error::MissingProperty`] if it is not set and
    /// [`Error::Xml`] if it is not well-formed.
    #[cfg(feature = "xml")]
    pub fn xml(&self, prop: &str) -> Result<crate::xml::Element> {
        match sys::with_bytes(
            |buf| sys::property_get(prop, buf),
            |bytes| match std::str::from_utf8(bytes) {
                Ok(text) => crate::xml::parse(text).map_err(Error::from),
                Err(_) => Err(Error::NotUtf8 {
                    what: format!("property `{prop}`"),
                }),
            },
        ) {
            Ok(result) => result,
            Err(sys::NOT_FOUND) => Err(Error::MissingProperty {
                name: prop.to_string(),
            }),
            Err(code) => Err(Error::from_code("xml", code)),
        }
    }

    /// Writes one line to the run's log; see [`crate::log`] for the macros.
    pub fn log(&self, level: log::Level, message: impl AsRef<str>) {
        log::log(level, message.as_ref());
    }
}

fn select(
    call: &'static str,
    prop: &str,
    result: std::result::Result<Vec<u8>, i32>,
) -> Result<Option<String>> {
    match result {
        Ok(bytes) => Ok(Some(into_string(bytes))),
        Err(sys::NOT_FOUND) => Ok(None),
        Err(sys::NOT_PARSEABLE) => Err(Error::NotParseable {
            name: prop.to_string(),
            message: sys::last_error_message(sys::NOT_PARSEABLE),
        }),
        Err(code) => Err(Error::from_code(call, code)),
    }
}

/// Property values are UTF-8 by the ABI's construction (the host validates
/// every write). Should a host ever break that, the text is repaired rather
/// than trusted.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}
