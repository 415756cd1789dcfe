//! Tokenizer special ids, UTF-8-safe streaming and chat rendering, on the synthetic
//! byte-level BPE tokenizer (same special-token layout as LFM2.5's).

use std::sync::OnceLock;

use lfm_engine::synth::synth_tokenizer_json;
use lfm_engine::text::{special, ChatTemplate, Message, Role, TextStream, Tokenizer};

fn tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let json = synth_tokenizer_json(65536, 0).unwrap();
        Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap()
    })
}

#[test]
fn special_tokens_sit_at_lfm2_ids() {
    let t = tok();
    assert_eq!(t.vocab_size(), 65536);
    for (id, text, _) in special::ALL {
        assert_eq!(t.token_id(text), Some(*id), "{text}");
        assert_eq!(
            t.encode(text).unwrap(),
            vec![*id],
            "{text} encodes to one token"
        );
        assert_eq!(t.decode(&[*id]).unwrap(), *text, "{text} decodes verbatim");
    }
    let ids = t
        .encode("<|im_start|>user\nhi<|im_end|>\n<think>plan</think>")
        .unwrap();
    assert_eq!(ids[0], special::IM_START);
    assert!(ids.contains(&special::IM_END));
    assert!(ids.contains(&special::THINK) && ids.contains(&special::THINK_END));
}

#[test]
fn every_id_decodes_and_text_round_trips() {
    let t = tok();
    for id in (0..65536u32).step_by(997) {
        t.decode(&[id]).unwrap();
    }
    let s = "Disk usage 97% on /var — restart nginx? naïve café 日本語 🙂";
    assert_eq!(t.decode(&t.encode(s).unwrap()).unwrap(), s);
}

#[test]
fn streaming_never_splits_a_utf8_character() {
    let t = tok();
    let s = "héllo wörld — 日本語 🙂 ok";
    let ids = t.encode(s).unwrap();
    assert!(
        ids.len() > s.chars().count() / 2,
        "multi-byte chars should span several tokens"
    );
    let mut stream = TextStream::new();
    let mut out = String::new();
    for &id in &ids {
        if let Some(piece) = stream.push(t, id).unwrap() {
            assert!(
                !piece.contains('\u{FFFD}'),
                "emitted a broken character: {piece:?}"
            );
            out.push_str(&piece);
        }
    }
    if let Some(rest) = stream.finish(t).unwrap() {
        out.push_str(&rest);
    }
    assert_eq!(out, s);
}

#[test]
fn rendered_chat_tokenizes_with_bos_and_turn_markers() {
    let t = tok();
    let tmpl = ChatTemplate::builtin();
    let text = tmpl
        .render(
            &[
                Message::new(Role::System, "sys"),
                Message::new(Role::User, "hi"),
            ],
            &[],
            true,
        )
        .unwrap();
    let ids = t.encode(&text).unwrap();
    assert_eq!(ids[0], special::BOS);
    assert_eq!(ids.iter().filter(|&&i| i == special::IM_START).count(), 3);
    assert_eq!(ids.iter().filter(|&&i| i == special::IM_END).count(), 2);
}

#[test]
fn special_ids_map_back_to_their_text() {
    let t = tok();
    for (id, text, _) in special::ALL {
        assert_eq!(t.id_to_token(*id).as_deref(), Some(*text), "id {id}");
    }
}
