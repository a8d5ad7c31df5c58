"""C2PA provenance inside the files (the c2pa-python library): final.mp4 and every export carry
a signed manifest built from the receipts.

The manifest holds
  c2pa.actions          c2pa.created with digitalSourceType trainedAlgorithmicMedia (AI-generated),
                        softwareAgent adspec
  ingredients           every storyboard image and video chunk (componentOf), each with its model,
                        provider, provider job id, recipe key and sha256 in the ingredient's metadata
  com.adspec.receipts   the same list as assertion data (and the music and spoken lines)

Signing: ADSPEC_C2PA_KEY and ADSPEC_C2PA_CERT (PEM files: the private key, the certificate chain
leaf first) or, by default, a local test CA and signer made on first use under
build/.adspec/c2pa/ (cryptography). Nobody else trusts that CA: a reader shows the manifest as
valid but its signer as untrusted, which is what it is.

`verify` reads a file's manifest back, checks its signature and the file's hash (the C2PA
validation of c2pa-rs), then that every ingredient's sha256 is what a receipt in the build says
and what the artifact on disk hashes to. Local and free: nothing here enters a recipe.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ProvenanceError
from .file_locks import exclusive
from .fsutil import temp_path_for
from .hashing import sha256_file, sha256_json
from .paths import AdPaths
from .plan_file import load_plan
from .receipts import Receipt, read_receipt

AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RECEIPTS_LABEL = "com.adspec.receipts"
#: what a reader reports for a signer outside its trust list: expected for the local test CA
UNTRUSTED = "signingCredential.untrusted"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".mp4": "video/mp4", ".wav": "audio/wav"}


# ---- signing identity --------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    chain_pem: bytes
    key_pem: bytes
    alg: str  # es256, ps256, ed25519
    local: bool  # the local test CA (trusted by nobody else)


def _alg_of(key_pem: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "es256", 384: "es384", 521: "es512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise ProvenanceError(f"ADSPEC_C2PA_KEY: unsupported key type {type(key).__name__}")


def local_ca_dir(build_dir: Path) -> Path:
    return Path(build_dir) / ".adspec" / "c2pa"


def _make_local_ca(folder: Path) -> None:
    """A test CA and a signer certificate it issues (EKU emailProtection, as C2PA asks of a
    claim signer); the signer's key is Ed25519, so a signature is deterministic."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "adspec local test CA - trusted by nobody else")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "adspec local test CA"), org])
    usage = {k: False for k in ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                                "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")}
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(**{**usage, "key_cert_sign": True, "crl_sign": True}), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "adspec local signer"), org])
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**{**usage, "digital_signature": True}), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "ca.pem": ca.public_bytes(pem),
        "signer.pem": leaf.public_bytes(pem) + ca.public_bytes(pem),
        "signer.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }
    written: dict[str, Path] = {}
    for fname, data in files.items():  # written to temp names, then renamed (the key last: it marks a whole CA)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{fname}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600 if fname.endswith(".key") else 0o644)
        written[fname] = Path(tmp)
    for fname, made in written.items():
        os.replace(made, folder / fname)


def signing_identity(build_dir: Path) -> Identity:
    key_path, cert_path = os.environ.get("ADSPEC_C2PA_KEY"), os.environ.get("ADSPEC_C2PA_CERT")
    if key_path or cert_path:
        if not (key_path and cert_path):
            raise ProvenanceError("set both ADSPEC_C2PA_KEY and ADSPEC_C2PA_CERT (PEM files), or neither")
        try:
            key_pem, chain = Path(key_path).read_bytes(), Path(cert_path).read_bytes()
        except OSError as e:
            raise ProvenanceError(f"cannot read the C2PA signing key or certificate: {e.strerror or e}") from None
        return Identity(chain, key_pem, _alg_of(key_pem), local=False)
    folder = local_ca_dir(build_dir)
    if not (folder / "signer.key").exists():
        with exclusive(folder / ".lock"):  # two builds at once make one CA, never a key of one with the other's cert
            if not (folder / "signer.key").exists():
                _make_local_ca(folder)
    key_pem = (folder / "signer.key").read_bytes()
    return Identity((folder / "signer.pem").read_bytes(), key_pem, _alg_of(key_pem), local=True)


# ---- what the manifest says ----------------------------------------------------------------


def _artifacts(paths: AdPaths) -> Iterator[tuple[Path, Receipt]]:
    """Every generated artifact the ad is made of now, with its receipt: its plan's storyboards
    and chunks (ingredients), music and spoken lines. Not every file under beats/: a beat taken
    out, or a line no longer spoken, leaves its files there (paid for, kept) but not in the ad."""
    plan = load_plan(paths)
    if plan is not None:
        files = [paths.storyboard(b.id) for b in plan.beats]
        files += [paths.chunk(b.id, k) for b in plan.beats for k in range(b.chunk_count)]
        files += [] if plan.native_audio else [paths.music]
        files += [paths.voice(b.id) for b in plan.voiced]
    else:  # no plan it can read: what the folder holds
        files = sorted(paths.root.glob("beats/*/storyboard.png")) + sorted(paths.root.glob("beats/*/chunk-*.mp4")) \
            + [paths.music] + sorted(paths.root.glob("beats/*/voice.wav"))
    for artifact in files:
        receipt = read_receipt(artifact) if artifact.is_file() else None
        if receipt is not None:
            yield artifact, receipt


def artifact_record(paths: AdPaths, artifact: Path, receipt: Receipt) -> dict[str, Any]:
    return {"path": artifact.relative_to(paths.root).as_posix(), "sha256": receipt.sha256,
            "model": receipt.recipe.get("model"), "provider": receipt.recipe.get("provider"),
            "kind": receipt.recipe.get("kind"), "job_id": receipt.job_id, "recipe_key": receipt.key}


def records_digest(paths: AdPaths) -> str:
    """One sha256 of what a manifest signed now would say of the ad's artifacts (their receipts'
    keys, models, job ids and hashes): the mix signs again when it changes (`graph.SignedReceipts`)."""
    return sha256_json([artifact_record(paths, a, r) for a, r in _artifacts(paths)])


def manifest_for(paths: AdPaths, ad: str, title: str) -> tuple[dict[str, Any], list[tuple[dict[str, Any], Path]]]:
    """(manifest definition, [(ingredient definition, file)]) from the ad's receipts."""
    records = [(artifact_record(paths, a, r), a) for a, r in _artifacts(paths)]
    ingredients = [({"title": rec["path"], "relationship": "componentOf", "metadata": {"adspec": rec}}, a)
                   for rec, a in records if rec["kind"] in ("image", "video")]
    manifest = {
        "claim_generator_info": [{"name": "adspec", "version": __version__}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": AI_GENERATED,
                 "softwareAgent": {"name": "adspec", "version": __version__},
                 "description": f"AI-generated video ad '{ad}' built by adspec from generated storyboards, clips and sound"}]}},
            {"label": RECEIPTS_LABEL, "data": {"ad": ad, "artifacts": [rec for rec, _ in records]}},
        ],
    }
    return manifest, ingredients


def enabled() -> bool:
    """Provenance is on unless ADSPEC_C2PA=off (a signed file is not bit-for-bit repeatable: C2PA
    salts every assertion, so two builds of the same ad differ in their manifests only)."""
    return os.environ.get("ADSPEC_C2PA", "on").strip().lower() not in ("off", "0", "false", "no")


#: the ISO BMFF `uuid` box type of a C2PA manifest store (C2PA specification, "Embedding manifests into BMFF")
C2PA_BOX_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


def carries_manifest(path: Path) -> bool:
    """Whether an MP4 carries a C2PA manifest (its top-level boxes only: nothing decoded)."""
    from .mp4_table import top_level_boxes

    try:
        return any(kind == b"uuid" and first == C2PA_BOX_UUID for kind, first in top_level_boxes(path))
    except OSError:
        return False


def signing_setting() -> str:
    """What the settings ask of the final's and the exports' manifests, as their tasks' config
    (a change re-runs the mix and the exports, locally): "off", "local" (the build folder's own
    CA) or the certificate chain's digest (public; the key is never read here)."""
    if not enabled():
        return "off"
    cert_path = os.environ.get("ADSPEC_C2PA_CERT")
    if not cert_path:
        return "local"
    try:
        return "cert:" + hashlib.sha256(Path(cert_path).read_bytes()).hexdigest()
    except OSError:
        return f"cert:unreadable:{cert_path}"  # signing says why, with the path


def sign_file(path: Path, paths: AdPaths, ad: str, build_dir: Path) -> None:
    """Embed a signed manifest in the MP4 at `path` (rewritten atomically)."""
    try:
        import c2pa
    except ImportError:
        raise ProvenanceError("C2PA signing needs c2pa-python (pip install c2pa-python), or set ADSPEC_C2PA=off") from None

    ident = signing_identity(build_dir)
    manifest, ingredients = manifest_for(paths, ad, path.name)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(ident.alg, ident.chain_pem, ident.key_pem, None))
        builder = c2pa.Builder(manifest)
        for definition, file in ingredients:
            with open(file, "rb") as f:
                builder.add_ingredient(definition, _MIME[file.suffix], f)
        tmp = temp_path_for(path, ".mp4")  # readable as the unsigned final was (mkstemp's is 0600)
        try:
            with open(tmp, "w+b") as dst, open(path, "rb") as src:
                builder.sign(signer, "video/mp4", src, dst)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except c2pa.C2paError as e:
        raise ProvenanceError(f"{path}: cannot sign its C2PA manifest: {e}") from None


# ---- reading it back -------------------------------------------------------------------------


@dataclass
class Verdict:
    file: Path
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)  # lines describing the manifest, for people

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)


def _build_root_of(file: Path) -> Path | None:
    """build/<ad>/ for build/<ad>/final.mp4 and build/<ad>/export/<placement>.mp4."""
    for folder in (file.parent, file.parent.parent):
        if (folder / "plan.json").is_file():
            return folder
    return None


def verify(file: Path, root: Path | None = None) -> Verdict:
    """Read `file`'s manifest, check its signature and hashes, and its ingredients against the
    receipts in the build (`root`: build/<ad>/, found beside the file by default)."""
    import c2pa

    file = Path(file)
    verdict = Verdict(file)
    try:
        reader = c2pa.Reader(str(file))
        manifest = reader.get_active_manifest() or {}
        results = reader.get_validation_results() or {}
        state = reader.get_validation_state()
    except c2pa.C2paError as e:
        verdict.fail(f"no readable C2PA manifest ({str(e).strip() or type(e).__name__})")
        return verdict
    active = results.get("activeManifest", {})
    failures = [f for f in active.get("failure", []) if f.get("code") != UNTRUSTED]
    untrusted = any(f.get("code") == UNTRUSTED for f in active.get("failure", []))
    for f in failures:
        verdict.fail(f"{f.get('code')}: {f.get('explanation', '')}".strip())
    if not any(s.get("code") == "claimSignature.validated" for s in active.get("success", [])):
        verdict.fail("the claim signature was not validated")
    sig = manifest.get("signature_info", {})
    verdict.chain.append(f"{file.name}: C2PA manifest {manifest.get('label')} ({state}), signed {sig.get('alg')} by "
                         f"'{sig.get('common_name')}' of '{sig.get('issuer')}'"
                         + (" - a signer this machine does not trust (adspec's local test CA?)" if untrusted else ""))
    actions = [a for x in manifest.get("assertions", []) if x.get("label", "").startswith("c2pa.actions")
               for a in x.get("data", {}).get("actions", [])]
    ai = [a for a in actions if a.get("digitalSourceType") == AI_GENERATED]
    if not ai:
        verdict.fail("no AI-generated source statement (c2pa.actions digitalSourceType trainedAlgorithmicMedia)")
    else:
        verdict.chain.append(f"  {ai[0].get('action')}: {ai[0].get('digitalSourceType')}")
    if root is not None and not (Path(root) / "plan.json").is_file():
        verdict.fail(f"{root}: not an ad's build folder (no plan.json)")
    root = root or _build_root_of(file)
    paths = AdPaths(root) if root is not None else None
    if paths is None:  # a copy (a CI artifact, a download): what the file itself carries is checked
        verdict.chain.append("  no build beside the file: its signature and hash are checked, its ingredients are "
                             "not matched with receipts (--build build/<ad> to)")
    for ing in manifest.get("ingredients", []):
        rec = (ing.get("metadata") or {}).get("adspec") or {}
        where = rec.get("path") or ing.get("title")
        verdict.chain.append(f"  ingredient {where}: {rec.get('model')} ({rec.get('provider')}), job "
                             f"{rec.get('job_id') or '-'}, sha256 {str(rec.get('sha256'))[:12]}…")
        if paths is None or not where:
            continue
        artifact = paths.root / where
        receipt = read_receipt(artifact) if artifact.is_file() else None
        if receipt is None:
            verdict.fail(f"ingredient {where}: no receipt in the build")
        elif receipt.sha256 != rec.get("sha256"):
            verdict.fail(f"ingredient {where}: sha256 {str(rec.get('sha256'))[:12]}… in the manifest, "
                         f"{receipt.sha256[:12]}… in its receipt")
        elif sha256_file(artifact) != receipt.sha256:
            verdict.fail(f"ingredient {where}: the file's sha256 is not its receipt's")
        elif sha256_json(receipt.recipe) != receipt.key:  # e.g. its model or a parameter edited by hand
            verdict.fail(f"ingredient {where}: its receipt's recipe does not hash to its recipe key (edited?)")
        else:
            differ = [k for k, v in artifact_record(paths, artifact, receipt).items() if rec.get(k) != v]
            if differ:
                verdict.fail(f"ingredient {where}: {', '.join(differ)} in the manifest differ from its receipt")
    if not manifest.get("ingredients"):
        verdict.fail("the manifest names no ingredients")
    return verdict


def describe(verdict: Verdict) -> str:
    return json.dumps({"file": str(verdict.file), "ok": verdict.ok, "problems": verdict.problems}, indent=2)
