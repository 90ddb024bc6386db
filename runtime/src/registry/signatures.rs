//! Ed25519 signatures over a policy's digest (`sha256:HEX` as text): what
//! `wasmscale policy sign` makes, an upload carries, and a scaler's
//! `require_signed_by` checks. Keys and signatures travel as lowercase hex.

use super::RegistryError;
use ed25519_dalek::{Signer as _, Verifier as _};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], RegistryError> {
    let t = text.trim();
    let bad = || RegistryError::BadSignature(format!("{what} is not {N} bytes of hex"));
    if t.len() != N * 2 || !t.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A new key pair: (secret, public), as hex. The secret comes from the
/// operating system's random source.
pub fn keygen() -> Result<(String, String), RegistryError> {
    use std::io::Read as _;
    let mut seed = [0u8; 32];
    let path = std::path::Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| RegistryError::io(path, e))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok((hex(&seed), hex(key.verifying_key().as_bytes())))
}

/// The public key of a secret key.
pub fn public_of(secret: &str) -> Result<String, RegistryError> {
    let key = ed25519_dalek::SigningKey::from_bytes(&unhex::<32>(secret, "the secret key")?);
    Ok(hex(key.verifying_key().as_bytes()))
}

/// Sign `digest` (`sha256:HEX`) with a secret key.
pub fn sign(secret: &str, digest: &str) -> Result<String, RegistryError> {
    super::check_digest(digest)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&unhex::<32>(secret, "the secret key")?);
    Ok(hex(&key.sign(digest.as_bytes()).to_bytes()))
}

/// Check that `signature` is `signer`'s over `digest`.
pub fn verify(signer: &str, digest: &str, signature: &str) -> Result<(), RegistryError> {
    super::check_digest(digest)?;
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&unhex::<32>(signer, "the signer's public key")?)
            .map_err(|_| {
            RegistryError::BadSignature("the signer's public key is not an Ed25519 key".into())
        })?;
    let sig = ed25519_dalek::Signature::from_bytes(&unhex::<64>(signature, "the signature")?);
    key.verify(digest.as_bytes(), &sig).map_err(|_| {
        RegistryError::BadSignature(format!(
            "the signature is not {}'s over {digest}",
            &signer[..signer.len().min(16)]
        ))
    })
}

/// Check a public key's spelling (for config validation).
pub fn check_public_key(key: &str) -> Result<(), RegistryError> {
    let bytes = unhex::<32>(key, "a public key")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map(|_| ())
        .map_err(|_| RegistryError::BadSignature("not an Ed25519 public key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_digest() {
        let (secret, public) = keygen().unwrap();
        assert_eq!(public_of(&secret).unwrap(), public);
        let d1 = crate::registry::digest_of(b"one");
        let d2 = crate::registry::digest_of(b"two");
        let sig = sign(&secret, &d1).unwrap();
        verify(&public, &d1, &sig).unwrap();
        assert!(verify(&public, &d2, &sig).is_err(), "another digest");
        let (_, other) = keygen().unwrap();
        assert!(verify(&other, &d1, &sig).is_err(), "another key");
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(verify(&public, &d1, &String::from_utf8(flipped).unwrap()).is_err());
        for bad in ["", "zz", &"0".repeat(63)] {
            assert!(matches!(
                verify(bad, &d1, &sig),
                Err(RegistryError::BadSignature(_))
            ));
            assert!(check_public_key(bad).is_err());
        }
        check_public_key(&public).unwrap();
    }
}
