//! A Spin component dependency: a plain wit-bindgen component (no Spin SDK)
//! that exports `nebula-test:calc/adder@0.1.0` and `nebula-test:calc/mul@0.1.0`.
//! `sdk-deps` imports them, and Nebula composes the two at load from
//! `[component.sdk-deps.dependencies]`. It imports no host capability, so it
//! runs under Spin's default `dependencies_inherit_configuration = false`.

wit_bindgen::generate!({ path: "wit", world: "calc" });

struct Calc;

impl exports::nebula_test::calc::adder::Guest for Calc {
    fn add(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
}

impl exports::nebula_test::calc::mul::Guest for Calc {
    fn mul(a: i64, b: i64) -> i64 {
        a.wrapping_mul(b)
    }
}

export!(Calc);
