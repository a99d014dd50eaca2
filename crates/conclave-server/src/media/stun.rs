//! Just enough STUN parsing to route a binding request to the participant it is for, by the
//! server's ICE username fragment (RFC 8489 USERNAME is `<server ufrag>:<client ufrag>`).

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The server-side ufrag of a STUN message, if `data` is one and carries a USERNAME.
pub fn server_ufrag(data: &[u8]) -> Option<&str> {
    // Header: type (2, top two bits zero), length (2), magic cookie (4), transaction id (12).
    if data.len() < 20 || data[0] & 0xc0 != 0 || data[4..8] != MAGIC_COOKIE {
        return None;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let ty = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let value = body.get(i + 4..i + 4 + alen)?;
        if ty == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to 4 bytes.
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend((username.len() as u16).to_be_bytes());
        attr.extend(username);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // A PRIORITY attribute before USERNAME, to check skipping.
        let mut body = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        body.extend(attr);
        let mut msg = vec![0x00, 0x01];
        msg.extend((body.len() as u16).to_be_bytes());
        msg.extend(MAGIC_COOKIE);
        msg.extend([7; 12]);
        msg.extend(body);
        msg
    }

    #[test]
    fn finds_server_ufrag() {
        assert_eq!(server_ufrag(&binding_request(b"srvx:cli")), Some("srvx"));
        assert_eq!(server_ufrag(&binding_request(b"abc")), Some("abc"));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let msg = binding_request(b"srvx:cli");
        for len in 0..msg.len() {
            let _ = server_ufrag(&msg[..len]);
        }
        assert_eq!(server_ufrag(&[0x80; 40]), None);
        let mut bad = msg.clone();
        bad[31] = 0xff; // USERNAME length past the end
        assert_eq!(server_ufrag(&bad), None);
    }
}
