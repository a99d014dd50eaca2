//! Every example in docs/protocol.md parses as the message type its fence says, and every message
//! type has at least one example.

use conclave_proto::{ClientMessage, ServerMessage};
use std::collections::BTreeSet;

fn examples(kind: &str) -> Vec<String> {
    let doc = include_str!("../../../docs/protocol.md");
    let fence = format!("```json {kind}");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("unterminated fence in protocol.md");
        out.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    out
}

fn type_of(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("example is JSON");
    v["type"].as_str().expect("example has a type").to_owned()
}

#[test]
fn client_examples_parse_and_cover_every_message() {
    let ex = examples("client");
    let seen: BTreeSet<String> = ex
        .iter()
        .map(|e| {
            ClientMessage::parse(e).unwrap_or_else(|err| panic!("{e}: {err:?}"));
            type_of(e)
        })
        .collect();
    let all: BTreeSet<String> = [
        "join",
        "offer",
        "media_state",
        "leave",
        "mute",
        "mute_all",
        "stop_video",
        "remove",
        "set_moderator",
        "lock",
        "set_lobby",
        "set_password",
        "admit",
        "deny",
        "end_meeting",
        "relay",
        "set_e2ee",
        "view",
        "stop_screen_share",
    ]
    .map(String::from)
    .into();
    assert_eq!(seen, all);
}

#[test]
fn server_examples_parse_and_cover_every_message() {
    let ex = examples("server");
    let seen: BTreeSet<String> = ex
        .iter()
        .map(|e| {
            let m: ServerMessage =
                serde_json::from_str(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            // Round trip: what the server would send for this example parses back the same.
            let again: ServerMessage =
                serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(m, again);
            type_of(e)
        })
        .collect();
    let all: BTreeSet<String> = [
        "welcome",
        "answer",
        "subscriptions",
        "participant_joined",
        "participant_updated",
        "participant_left",
        "error",
        "relay",
        "lobby_waiting",
        "knock",
        "knock_resolved",
        "settings",
        "role",
        "moderated",
        "closed",
        "draining",
        "publish_layers",
        "active_speaker",
    ]
    .map(String::from)
    .into();
    assert_eq!(seen, all);
}

#[test]
fn welcome_with_turn_servers_is_documented() {
    let documented = examples("server").iter().any(|e| {
        matches!(
            serde_json::from_str(e),
            Ok(ServerMessage::Welcome { ice_servers, ice_transport_policy: Some(_), .. })
                if ice_servers.iter().any(|s| s.username.is_some() && s.credential.is_some())
        )
    });
    assert!(
        documented,
        "docs/protocol.md shows a welcome with ice_servers and a policy"
    );
}
