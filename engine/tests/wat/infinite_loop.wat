;; Loops forever: ends with out of fuel, or a timeout when fuel is huge.
(module
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (loop $l (br $l))
    (i32.const 0)))
