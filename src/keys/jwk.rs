//! JSON Web Keys (RFC 7517/7518) to OpenSSL private keys: RSA and EC P-256/384/521, as Go
//! ocicrypt accepts them (a single JWK; a JWK Set is accepted too, each key on its own).

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Rsa, RsaPrivateKeyBuilder};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::encoding::decode_url;

/// One JWK as JSON; secret members are wiped on drop.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<Zeroizing<String>>,
    p: Option<Zeroizing<String>>,
    q: Option<Zeroizing<String>>,
    dp: Option<Zeroizing<String>>,
    dq: Option<Zeroizing<String>>,
    qi: Option<Zeroizing<String>>,
    keys: Option<Vec<serde_json::Value>>,
}

/// What a JWK document turned out to be.
pub(crate) enum JwkOutcome {
    /// A private key.
    Private(PKey<Private>),
    /// A key that cannot decrypt, with the reason.
    Unusable(String),
}

/// Parses a JWK (or JWK Set) document. `None` when the bytes are not JSON with a `kty` or `keys`.
pub(crate) fn parse(bytes: &[u8]) -> Option<Vec<JwkOutcome>> {
    let raw: RawJwk = serde_json::from_slice(bytes).ok()?;
    if let Some(keys) = raw.keys {
        if keys.is_empty() {
            return Some(vec![JwkOutcome::Unusable("an empty JWK Set".into())]);
        }
        let mut out = Vec::new();
        for value in keys {
            let key: RawJwk = match serde_json::from_value(value) {
                Ok(k) => k,
                Err(_) => {
                    out.push(JwkOutcome::Unusable("a JWK Set member is not a JWK".into()));
                    continue;
                }
            };
            out.push(convert(&key));
        }
        return Some(out);
    }
    if raw.kty.is_empty() {
        return None;
    }
    Some(vec![convert(&raw)])
}

fn convert(jwk: &RawJwk) -> JwkOutcome {
    let result = match jwk.kty.as_str() {
        "RSA" => rsa(jwk),
        "EC" => ec(jwk),
        other => Err(format!(
            "JWK key type {:?} cannot unwrap layer keys",
            clean(other)
        )),
    };
    match result {
        Ok(key) => JwkOutcome::Private(key),
        Err(reason) => JwkOutcome::Unusable(reason),
    }
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(16).collect()
}

fn bn(field: &str, value: Option<&str>) -> Result<BigNum, String> {
    let text = value.ok_or_else(|| format!("JWK member {field:?} is missing"))?;
    let bytes = Zeroizing::new(
        decode_url(text).map_err(|_| format!("JWK member {field:?} is not base64url"))?,
    );
    BigNum::from_slice(&bytes).map_err(|_| format!("JWK member {field:?} is not a number"))
}

fn rsa(jwk: &RawJwk) -> Result<PKey<Private>, String> {
    let Some(d) = jwk.d.as_deref() else {
        return Err("public JWK, not a private key".into());
    };
    let n = bn("n", jwk.n.as_deref())?;
    let e = bn("e", jwk.e.as_deref())?;
    let d = bn("d", Some(d.as_str()))?;
    let crt = [&jwk.p, &jwk.q, &jwk.dp, &jwk.dq, &jwk.qi];
    let rsa = if crt.iter().all(|m| m.is_some()) {
        Rsa::from_private_components(
            n,
            e,
            d,
            bn("p", jwk.p.as_deref().map(String::as_str))?,
            bn("q", jwk.q.as_deref().map(String::as_str))?,
            bn("dp", jwk.dp.as_deref().map(String::as_str))?,
            bn("dq", jwk.dq.as_deref().map(String::as_str))?,
            bn("qi", jwk.qi.as_deref().map(String::as_str))?,
        )
    } else {
        RsaPrivateKeyBuilder::new(n, e, d).map(RsaPrivateKeyBuilder::build)
    }
    .map_err(|_| "JWK RSA members do not form a key".to_string())?;
    PKey::from_rsa(rsa).map_err(|_| "JWK RSA key rejected by OpenSSL".to_string())
}

fn ec(jwk: &RawJwk) -> Result<PKey<Private>, String> {
    let Some(d) = jwk.d.as_deref() else {
        return Err("public JWK, not a private key".into());
    };
    let nid = match jwk.crv.as_deref() {
        Some("P-256") => Nid::X9_62_PRIME256V1,
        Some("P-384") => Nid::SECP384R1,
        Some("P-521") => Nid::SECP521R1,
        Some(other) => return Err(format!("JWK curve {:?} is not supported", clean(other))),
        None => return Err("JWK member \"crv\" is missing".into()),
    };
    let group = EcGroup::from_curve_name(nid).map_err(|_| "EC group unavailable".to_string())?;
    let x = bn("x", jwk.x.as_deref())?;
    let y = bn("y", jwk.y.as_deref())?;
    let d = bn("d", Some(d.as_str()))?;
    let mut ctx = BigNumContext::new().map_err(|_| "OpenSSL context".to_string())?;
    let mut point = EcPoint::new(&group).map_err(|_| "OpenSSL point".to_string())?;
    point
        .set_affine_coordinates_gfp(&group, &x, &y, &mut ctx)
        .map_err(|_| "JWK EC point is not on the curve".to_string())?;
    let key = EcKey::from_private_components(&group, &d, &point)
        .map_err(|_| "JWK EC members do not form a key".to_string())?;
    key.check_key()
        .map_err(|_| "JWK EC private and public parts do not match".to_string())?;
    PKey::from_ec_key(key).map_err(|_| "JWK EC key rejected by OpenSSL".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_jwk_json_and_public_keys() {
        assert!(parse(b"{}").is_none());
        assert!(parse(b"not json").is_none());
        let public = br#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        match parse(public).unwrap().pop().unwrap() {
            JwkOutcome::Unusable(r) => assert!(r.contains("public"), "{r}"),
            JwkOutcome::Private(_) => panic!("public key accepted"),
        }
        match parse(br#"{"kty":"oct","k":"AAAA"}"#)
            .unwrap()
            .pop()
            .unwrap()
        {
            JwkOutcome::Unusable(r) => assert!(r.contains("oct"), "{r}"),
            JwkOutcome::Private(_) => panic!(),
        }
    }

    /// RFC 7517 Appendix A.2's P-256 private key.
    #[test]
    fn parses_rfc7517_ec_private_key() {
        let jwk = br#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE","use":"enc","kid":"1"}"#;
        match parse(jwk).unwrap().pop().unwrap() {
            JwkOutcome::Private(k) => assert_eq!(k.bits(), 256),
            JwkOutcome::Unusable(r) => panic!("{r}"),
        }
        // A mismatched public point is refused.
        let bad = br#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}"#;
        assert!(matches!(
            parse(bad).unwrap().pop().unwrap(),
            JwkOutcome::Unusable(_)
        ));
    }

    #[test]
    fn round_trips_a_generated_rsa_key() {
        let rsa = Rsa::generate(2048).unwrap();
        let enc = |b: &openssl::bn::BigNumRef| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                b.to_vec(),
            )
        };
        let jwk = serde_json::json!({
            "kty": "RSA", "n": enc(rsa.n()), "e": enc(rsa.e()), "d": enc(rsa.d()),
            "p": enc(rsa.p().unwrap()), "q": enc(rsa.q().unwrap()),
            "dp": enc(rsa.dmp1().unwrap()), "dq": enc(rsa.dmq1().unwrap()), "qi": enc(rsa.iqmp().unwrap()),
        });
        match parse(jwk.to_string().as_bytes()).unwrap().pop().unwrap() {
            JwkOutcome::Private(k) => {
                assert_eq!(k.rsa().unwrap().n().to_vec(), rsa.n().to_vec());
            }
            JwkOutcome::Unusable(r) => panic!("{r}"),
        }
        let set = serde_json::json!({"keys": [jwk, {"kty":"oct"}]});
        assert_eq!(parse(set.to_string().as_bytes()).unwrap().len(), 2);
    }

    /// Found by `cargo fuzz` (target `keys`): `{"keys":[]}` yielded nothing at all, so the file
    /// was neither a key nor listed among the skipped ones in the "no key fits" message.
    #[test]
    fn an_empty_jwk_set_is_reported_as_unusable() {
        match parse(br#"{"keys":[]}"#).unwrap().as_slice() {
            [JwkOutcome::Unusable(r)] => assert!(r.contains("empty JWK Set"), "{r}"),
            other => panic!("{} outcomes", other.len()),
        }
    }
}
