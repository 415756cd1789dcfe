//! Coverage-guided fuzzing of GGUF loading: parse, config, tokenizer, weights, one step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lfm_engine::gguf::exercise(data);
});
