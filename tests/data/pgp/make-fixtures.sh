#!/usr/bin/env bash
# Regenerates the OpenPGP fixtures (test-only keys; never use them for anything real):
#   secret.gpg          binary secret keyring: RSA-2048 primary, RSA-2048 encryption subkey, no passphrase
#   skopeo-1.9.3.pgp    a pgp wrapped key as Debian's skopeo 1.9.3 (Go ocicrypt) writes it for that key
#   skopeo-1.9.3.json   its plaintext (the private options), decrypted with GnuPG
#   gpg-zlib.pgp        the same plaintext encrypted by GnuPG with ZLIB compression
#   gpg-plain.pgp       ... and without compression
# Needs gnupg, skopeo, tar, gzip, sha256sum. Run from anywhere: bash tests/data/pgp/make-fixtures.sh
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
email=fuzz@ctd-decoder.test
gpg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key "ctd-decoder fuzz fixture <$email>" rsa2048 sign never 2>/dev/null
fpr=$(gpg --with-colons --list-keys "$email" | awk -F: '/^fpr/ {print $10; exit}')
gpg --batch --pinentry-mode loopback --passphrase '' --quick-add-key "$fpr" rsa2048 encr never 2>/dev/null
gpg --export-secret-keys "$email" > "$out/secret.gpg"

# A one-layer OCI image for skopeo to encrypt.
mkdir -p "$work/src/blobs/sha256" "$work/rootfs"
echo fixture > "$work/rootfs/file"
tar -C "$work/rootfs" -cf "$work/layer.tar" . && gzip -n "$work/layer.tar"
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$work/src/blobs/sha256/$d"; echo "$d"; }
ld=$(put "$work/layer.tar.gz"); ls=$(stat -c %s "$work/layer.tar.gz")
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config.json"
cd_=$(put "$work/config.json"); cs=$(stat -c %s "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cd_" "$cs" "$ld" "$ls" > "$work/manifest.json"
md=$(put "$work/manifest.json"); ms=$(stat -c %s "$work/manifest.json")
echo '{"imageLayoutVersion":"1.0.0"}' > "$work/src/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' "$md" "$ms" > "$work/src/index.json"
skopeo copy --quiet --encryption-key "pgp:$email" "oci:$work/src:latest" "oci:$work/dst:latest"
manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$work/dst/index.json")
python3 - "$work/dst/blobs/sha256/$manifest" "$out/skopeo-1.9.3.pgp" <<'PY'
import base64, json, sys
m = json.load(open(sys.argv[1]))
blob = m["layers"][0]["annotations"]["org.opencontainers.image.enc.keys.pgp"]
open(sys.argv[2], "wb").write(base64.b64decode(blob))
PY
gpg --batch --quiet --decrypt "$out/skopeo-1.9.3.pgp" > "$out/skopeo-1.9.3.json" 2>/dev/null
gpg --batch --trust-model always --compress-algo zlib --recipient "$email" --encrypt < "$out/skopeo-1.9.3.json" > "$out/gpg-zlib.pgp"
gpg --batch --trust-model always --compress-algo none --recipient "$email" --encrypt < "$out/skopeo-1.9.3.json" > "$out/gpg-plain.pgp"
ls -l "$out"
