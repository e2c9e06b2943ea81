//! The opensips.cfg translator: the lexer, the parser and the lowering to
//! Lua of one file (includes are not followed and m4 is not run: both
//! reach outside the input).
#![no_main]

use compat::ast::Script;
use compat::parse::{Parser, Top};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(toks) = compat::lex::tokenize(text) else {
        return;
    };
    let Ok(tops) = Parser::new(&toks, 0).file() else {
        return;
    };
    let mut script = Script {
        files: vec!["fuzz.cfg".into()],
        items: Vec::new(),
    };
    for t in tops {
        if let Top::Item(i) = t {
            script.items.push(i);
        }
    }
    let _ = compat::lower::lower(&script, &compat::Options::default());
});
