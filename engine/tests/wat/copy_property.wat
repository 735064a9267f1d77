;; Copies property `in` to property `out`, sends it as a message and logs
;; it; fails with code -1 if `in` is not set.
(module
  (import "chatflow" "property_get" (func $property_get (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "message_send" (func $message_send (param i32 i32) (result i32)))
  (import "chatflow" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "inout")
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (local $n i32)
    (local.set $n (call $property_get (i32.const 0) (i32.const 2) (i32.const 1024) (i32.const 60000)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
    (drop (call $property_set (i32.const 2) (i32.const 3) (i32.const 1024) (local.get $n)))
    (drop (call $message_send (i32.const 1024) (local.get $n)))
    (call $log (i32.const 1) (i32.const 1024) (local.get $n))
    (i32.const 0)))
