//! Signed JSON documents (the certificate is one) and the canonical JSON text they are signed in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BuildKey, PublicKey, VerifyError, digest};

/// A JSON document with the signature of a build key over it.
///
/// The signature is over the 64 hex characters of blake3 of the body's canonical JSON text
/// (compact, object keys sorted by their UTF-8 bytes), so any re-serialization of the same value
/// verifies: key order and whitespace in a stored copy do not matter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Signed {
    /// The signed document.
    pub body: Value,
    /// The key that signed it.
    pub public_key: PublicKey,
    /// Signature (hex) over the digest of the body's canonical JSON.
    pub signature: String,
}

impl Signed {
    /// Signs `body` with `key`.
    pub fn sign(body: Value, key: &BuildKey) -> Signed {
        let signature = key.sign(body_digest(&body).as_bytes());
        Signed {
            body,
            public_key: key.public(),
            signature,
        }
    }

    /// Checks that the signature matches the body and the key the document names.
    ///
    /// This shows only that *some* key signed the document as it is; use
    /// [`Signed::verify_with`] to also require a particular key.
    pub fn verify(&self) -> Result<(), VerifyError> {
        let key = self.public_key.verifying_key()?;
        crate::key::check_signature(&key, body_digest(&self.body).as_bytes(), &self.signature)
            .map_err(|reason| VerifyError::DocumentSignature {
                fingerprint: self.public_key.fingerprint(),
                reason,
            })
    }

    /// [`Signed::verify`], and checks that the document was signed by `expected`.
    pub fn verify_with(&self, expected: &PublicKey) -> Result<(), VerifyError> {
        if self.public_key != *expected {
            return Err(VerifyError::WrongKey {
                expected: expected.fingerprint(),
                found: self.public_key.fingerprint(),
            });
        }
        self.verify()
    }
}

fn body_digest(body: &Value) -> String {
    digest(canonical_json(body).as_bytes())
}

/// The canonical JSON text of `value`: compact, with object keys sorted by their UTF-8 bytes at
/// every depth.
///
/// serde_json's `Map` is a `BTreeMap` unless some crate in the build enables its `preserve_order`
/// feature, which would make it keep insertion order. Sorting here keeps signatures stable either
/// way.
pub fn canonical_json(value: &Value) -> String {
    serde_json::to_string(&sorted(value)).expect("a serde_json::Value always serializes")
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            Value::Object(
                fields
                    .into_iter()
                    .map(|(name, field)| (name.clone(), sorted(field)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> BuildKey {
        BuildKey::from_secret_bytes(&[7; 32])
    }

    #[test]
    fn key_order_does_not_change_the_canonical_text_or_signature() {
        let forward: Value =
            serde_json::from_str(r#"{"a":1,"b":{"x":[1,{"q":0,"p":1}],"w":null},"c":"s"}"#)
                .unwrap();
        let backward: Value =
            serde_json::from_str(r#"{ "c" : "s", "b": {"w":null, "x":[1,{"p":1,"q":0}]}, "a":1 }"#)
                .unwrap();
        assert_eq!(canonical_json(&forward), canonical_json(&backward));
        assert_eq!(
            canonical_json(&forward),
            r#"{"a":1,"b":{"w":null,"x":[1,{"p":1,"q":0}]},"c":"s"}"#
        );
        let signed = Signed::sign(forward, &key());
        let reordered = Signed {
            body: backward,
            ..signed.clone()
        };
        reordered.verify().unwrap();
        assert_eq!(
            Signed::sign(reordered.body.clone(), &key()).signature,
            signed.signature
        );
    }

    #[test]
    fn canonical_text_survives_a_roundtrip_through_text() {
        let body = json!({"f": 0.1, "big": u64::MAX, "neg": -3, "s": "é\u{0}\"", "e": []});
        let text = canonical_json(&body);
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&reparsed), text);
    }

    #[test]
    fn verify_with_requires_the_expected_key() {
        let signed = Signed::sign(json!({"x": 1}), &key());
        signed.verify_with(&key().public()).unwrap();
        let other = BuildKey::from_secret_bytes(&[8; 32]).public();
        assert!(matches!(
            signed.verify_with(&other),
            Err(VerifyError::WrongKey { .. })
        ));
    }
}
