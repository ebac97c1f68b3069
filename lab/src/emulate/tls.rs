//! A TLS 1.2 ClientHello with a fixed fingerprint, as an implant's own TLS stack sends it: the
//! same cipher suites, extensions, groups and point formats every time, so its JA3 is a
//! constant a feed (abuse.ch SSLBL, or the lab's own) can list. Built by hand rather than by a
//! TLS library because a library's hello changes with its version and features.

use md5::{Digest, Md5};

/// The hello's TLS version (TLS 1.2), in the record and the handshake.
const VERSION: u16 = 0x0303;
/// Cipher suites, in order: ECDHE-ECDSA/RSA with AES-GCM and AES-CBC, then RSA key exchange
/// and 3DES, an old stack's list.
const CIPHERS: [u16; 11] = [
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035, 0x000a,
];
/// Named groups: x25519, secp256r1, secp384r1.
const GROUPS: [u16; 3] = [0x001d, 0x0017, 0x0018];
/// EC point formats: uncompressed.
const POINT_FORMATS: [u8; 1] = [0];
/// Signature algorithms: ECDSA and RSA-PSS/PKCS#1 with SHA-256/384/512.
const SIGNATURE_ALGORITHMS: [u16; 8] = [
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
];
const EXT_SERVER_NAME: u16 = 0;
const EXT_GROUPS: u16 = 10;
const EXT_POINT_FORMATS: u16 = 11;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_EXTENDED_MASTER_SECRET: u16 = 23;
const EXT_SESSION_TICKET: u16 = 35;

/// The extensions in the order the hello carries them (`server_name` only with an SNI).
fn extension_ids(sni: bool) -> Vec<u16> {
    let mut ids = Vec::with_capacity(6);
    if sni {
        ids.push(EXT_SERVER_NAME);
    }
    ids.extend([
        EXT_GROUPS,
        EXT_POINT_FORMATS,
        EXT_SIGNATURE_ALGORITHMS,
        EXT_SESSION_TICKET,
        EXT_EXTENDED_MASTER_SECRET,
    ]);
    ids
}

fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// `body` behind its length in `width` bytes (1, 2 or 3), big-endian.
fn with_len(width: usize, body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes()[4 - width..].to_vec();
    out.extend_from_slice(body);
    out
}

fn extension(id: u16, sni: Option<&str>) -> Vec<u8> {
    let data = match id {
        EXT_SERVER_NAME => {
            // One entry of type host_name.
            let mut entry = vec![0u8];
            entry.extend(with_len(2, sni.unwrap_or_default().as_bytes()));
            with_len(2, &entry)
        }
        EXT_GROUPS => with_len(2, &u16s(&GROUPS)),
        EXT_POINT_FORMATS => with_len(1, &POINT_FORMATS),
        EXT_SIGNATURE_ALGORITHMS => with_len(2, &u16s(&SIGNATURE_ALGORITHMS)),
        _ => Vec::new(),
    };
    let mut out = id.to_be_bytes().to_vec();
    out.extend(with_len(2, &data));
    out
}

/// The hello as one TLS record, with `random` as its 32 random bytes and `sni` as its server
/// name (none: no `server_name` extension).
pub fn client_hello(sni: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    let extensions: Vec<u8> = extension_ids(sni.is_some())
        .into_iter()
        .flat_map(|id| extension(id, sni))
        .collect();
    let mut hello = VERSION.to_be_bytes().to_vec();
    hello.extend_from_slice(&random);
    hello.push(0); // no session id
    hello.extend(with_len(2, &u16s(&CIPHERS)));
    hello.extend([1, 0]); // compression: null only
    hello.extend(with_len(2, &extensions));
    let mut handshake = vec![1u8]; // client_hello
    handshake.extend(with_len(3, &hello));
    // The record layer says TLS 1.0, as most stacks do for the first record.
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(with_len(2, &handshake));
    record
}

/// The hello's JA3 string: version, ciphers, extensions, groups, point formats.
pub fn ja3_string(sni: bool) -> String {
    let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join("-");
    format!(
        "{},{},{},{},{}",
        VERSION,
        join(&mut CIPHERS.iter().map(u16::to_string)),
        join(&mut extension_ids(sni).iter().map(u16::to_string)),
        join(&mut GROUPS.iter().map(u16::to_string)),
        join(&mut POINT_FORMATS.iter().map(u8::to_string)),
    )
}

/// The hello's JA3 hash (MD5 of [`ja3_string`], lower-case hex), as Suricata's `ja3.hash`.
pub fn ja3_hash(sni: bool) -> String {
    Md5::digest(ja3_string(sni).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_nest_and_the_sni_is_carried() {
        let r = client_hello(Some("c2.example"), [7; 32]);
        assert_eq!(&r[..3], &[0x16, 0x03, 0x01]);
        let record_len = u16::from_be_bytes([r[3], r[4]]) as usize;
        assert_eq!(record_len, r.len() - 5);
        assert_eq!(r[5], 1, "a client_hello");
        let hs_len = u32::from_be_bytes([0, r[6], r[7], r[8]]) as usize;
        assert_eq!(hs_len, r.len() - 9);
        assert!(r.windows(10).any(|w| w == b"c2.example"));
        // Without an SNI the hello is shorter by the server_name extension exactly.
        let plain = client_hello(None, [7; 32]);
        assert_eq!(r.len() - plain.len(), 4 + 2 + 1 + 2 + "c2.example".len());
    }

    #[test]
    fn ja3_lists_the_fields_in_wire_order() {
        assert_eq!(
            ja3_string(true),
            "771,49195-49199-49196-49200-49171-49172-156-157-47-53-10,0-10-11-13-35-23,29-23-24,0"
        );
        assert!(!ja3_string(false).contains(",0-10"));
        assert_eq!(ja3_hash(true).len(), 32);
        assert_ne!(ja3_hash(true), ja3_hash(false));
    }
}
