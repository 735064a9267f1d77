;; Sends the HTTP request described (as ABI v1 request JSON) by property
;; `req` and stores the response body in property `body`. Returns the
;; negative code of a failed call.
(module
  (import "chatflow" "property_get" (func $property_get (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
  (import "chatflow" "http_response_body" (func $http_response_body (param i32 i32 i32) (result i32)))
  (memory (export "memory") 16)
  (data (i32.const 0) "reqbody")
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (local $n i32) (local $h i32)
    (local.set $n (call $property_get (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 8192)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
    (local.set $h (call $http_request (i32.const 1024) (local.get $n)))
    (if (i32.lt_s (local.get $h) (i32.const 0)) (then (return (local.get $h))))
    (local.set $n (call $http_response_body (local.get $h) (i32.const 65536) (i32.const 983040)))
    (drop (call $property_set (i32.const 3) (i32.const 4) (i32.const 65536) (local.get $n)))
    (i32.const 0)))
