//! `uniffi-bindgen`, built from the same uniffi version as the core so the generated Kotlin
//! matches the library's scaffolding. `scripts/bindings` runs it in library mode.

fn main() {
    uniffi::uniffi_bindgen_main()
}
