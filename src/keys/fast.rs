//! A direct path for the common unencrypted key encodings.
//!
//! OpenSSL 3's generic key loading (`OSSL_DECODER`, behind `PEM_read_bio_PrivateKey` and
//! `d2i_AutoPrivateKey`) tries every decoder of every provider and costs ~0.7 ms per key, a third
//! of the decoder's whole start-up budget. For PKCS#8 and PKCS#1 RSA keys and PKCS#8 and SEC1
//! EC keys on a named curve, this module unpacks the outer structure with [`crate::der`] and
//! hands the inner key to OpenSSL's specific decoders (`d2i_RSAPrivateKey`, or the EC private
//! scalar and point), which take microseconds. Anything else — or anything odd — returns `None`
//! and goes the generic way, so this is a shortcut, never a second opinion.

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;

use crate::der::{self, tag, Reader};

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// A private key from unencrypted PKCS#8 (RSA or EC), PKCS#1 RSA or SEC1 EC DER, or `None`.
pub(super) fn private_key(der_bytes: &[u8]) -> Option<PKey<Private>> {
    pkcs8(der_bytes)
        .or_else(|| pkcs1(der_bytes))
        .or_else(|| sec1(der_bytes, None))
}

fn pkcs8(bytes: &[u8]) -> Option<PKey<Private>> {
    let mut outer = Reader::new(bytes).read_tag(tag::SEQUENCE).ok()?.reader();
    let version = outer.read_tag(tag::INTEGER).ok()?;
    if version.value != [0] && version.value != [1] {
        return None;
    }
    let mut alg = outer.read_tag(tag::SEQUENCE).ok()?.reader();
    let oid = alg.read_tag(tag::OID).ok()?.value;
    let inner = outer.read_tag(tag::OCTET_STRING).ok()?.value;
    if oid == der::oid(RSA_ENCRYPTION).as_slice() {
        return pkcs1(inner);
    }
    if oid == der::oid(EC_PUBLIC_KEY).as_slice() {
        let curve = alg.read_tag(tag::OID).ok()?.value;
        return sec1(inner, Some(curve_nid(curve)?));
    }
    None
}

fn pkcs1(bytes: &[u8]) -> Option<PKey<Private>> {
    // Only a complete, two-prime RSAPrivateKey with nothing after it.
    let mut r = Reader::new(bytes);
    let seq = r.read_tag(tag::SEQUENCE).ok()?;
    if !r.is_empty() || seq.value.first() != Some(&tag::INTEGER) {
        return None;
    }
    let rsa = Rsa::private_key_from_der(bytes).ok()?;
    PKey::from_rsa(rsa).ok()
}

fn curve_nid(oid: &[u8]) -> Option<Nid> {
    [
        ("1.2.840.10045.3.1.7", Nid::X9_62_PRIME256V1),
        ("1.3.132.0.34", Nid::SECP384R1),
        ("1.3.132.0.35", Nid::SECP521R1),
    ]
    .into_iter()
    .find(|(text, _)| der::oid(text) == oid)
    .map(|(_, nid)| nid)
}

/// `ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] parameters OPTIONAL,
/// [1] publicKey BIT STRING OPTIONAL }`, the curve from `[0]` or from PKCS#8.
fn sec1(bytes: &[u8], curve: Option<Nid>) -> Option<PKey<Private>> {
    let mut r = Reader::new(bytes);
    let mut key = r.read_tag(tag::SEQUENCE).ok()?.reader();
    if !r.is_empty() || key.read_tag(tag::INTEGER).ok()?.value != [1] {
        return None;
    }
    let scalar = key.read_tag(tag::OCTET_STRING).ok()?.value;
    let mut curve = curve;
    let mut public = None;
    while !key.is_empty() {
        let field = key.read().ok()?;
        match field.tag {
            0xa0 => {
                let oid = field.reader().read_tag(tag::OID).ok()?.value;
                let named = curve_nid(oid)?;
                if curve.is_some_and(|c| c != named) {
                    return None;
                }
                curve = Some(named);
            }
            0xa1 => {
                let bits = field.reader().read_tag(0x03).ok()?.value;
                // A BIT STRING of whole octets: unused-bits byte 0, then the encoded point.
                if bits.first() != Some(&0) {
                    return None;
                }
                public = Some(&bits[1..]);
            }
            _ => return None,
        }
    }
    let group = EcGroup::from_curve_name(curve?).ok()?;
    let d = BigNum::from_slice(scalar).ok()?;
    let mut ctx = BigNumContext::new().ok()?;
    let point = match public {
        Some(encoded) => EcPoint::from_bytes(&group, encoded, &mut ctx).ok()?,
        None => {
            let mut p = EcPoint::new(&group).ok()?;
            p.mul_generator2(&group, &d, &mut ctx).ok()?;
            p
        }
    };
    let ec = EcKey::from_private_components(&group, &d, &point).ok()?;
    // The private scalar and the public point must belong together.
    ec.check_key().ok()?;
    PKey::from_ec_key(ec).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::EcKey;

    #[test]
    fn agrees_with_openssl_on_every_common_encoding() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkey = PKey::from_rsa(rsa.clone()).unwrap();
        for der in [
            pkey.private_key_to_pkcs8().unwrap(),
            rsa.private_key_to_der().unwrap(),
        ] {
            let k = private_key(&der).expect("fast path");
            assert_eq!(k.rsa().unwrap().n().to_vec(), rsa.n().to_vec());
            assert_eq!(k.rsa().unwrap().d().to_vec(), rsa.d().to_vec());
        }
        for nid in [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::SECP521R1] {
            let ec = EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap();
            let pkey = PKey::from_ec_key(ec.clone()).unwrap();
            for der in [
                pkey.private_key_to_pkcs8().unwrap(),
                ec.private_key_to_der().unwrap(),
            ] {
                let k = private_key(&der).expect("fast path");
                assert!(k.public_eq(&pkey), "{nid:?}");
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_know() {
        // secp256k1 and Ed25519 go the generic way (which then refuses them by type).
        let k1 = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP256K1).unwrap()).unwrap();
        assert!(private_key(&k1.private_key_to_der().unwrap()).is_none());
        let ed = PKey::generate_ed25519().unwrap();
        assert!(private_key(&ed.private_key_to_pkcs8().unwrap()).is_none());
        assert!(private_key(b"").is_none());
        assert!(private_key(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_none());
        // Trailing bytes after a valid key are not the fast path's business.
        let rsa = Rsa::generate(2048).unwrap();
        let mut der = rsa.private_key_to_der().unwrap();
        der.push(0);
        assert!(pkcs1(&der).is_none());
        // Every truncation is declined without a panic.
        let full = PKey::from_rsa(rsa).unwrap().private_key_to_pkcs8().unwrap();
        for n in 0..full.len() {
            let _ = private_key(&full[..n]);
        }
    }
}
