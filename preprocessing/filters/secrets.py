"""Secrets and PII: API keys, private keys, passwords in URLs, e-mails and IP addresses, redacted or dropped.

Detection: `detect-secrets`' plugins used as a library (their ``analyze_string`` API and the
high-entropy plugins' ``calculate_shannon_entropy``), run only on the lines a cheap prefilter
selects, plus precise regexes for e-mail, IPv4 and IPv6 addresses checked with :mod:`ipaddress`.
Every decision depends on the record alone, so the outcome is the same for any order or number
of workers. See docs/filters.md ("Secrets and PII").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any, NamedTuple

from preprocessing.filters.base import Edit, Filter
from preprocessing.record import CodeFile

EMAIL = "email"
IP_ADDRESS = "ip_address"
BUDGET = "budget"
PRIVATE_KEY = "private_key"

# kind -> the placeholder that replaces a finding in redact mode
PLACEHOLDERS: dict[str, str] = {EMAIL: "<EMAIL>", IP_ADDRESS: "<IP_ADDRESS>"}
SECRET_KINDS = (
    "aws_access_key", "aws_secret_key", "github_token", "gitlab_token", "slack_token", "slack_webhook",
    "stripe_key", "openai_key", "huggingface_token", "pypi_token", "npm_token", "sendgrid_key", PRIVATE_KEY, "jwt",
    "url_password", "high_entropy_base64", "high_entropy_hex",
)
PLACEHOLDERS.update({k: f"<SECRET:{k}>" for k in SECRET_KINDS})
KINDS = (*SECRET_KINDS, EMAIL, IP_ADDRESS)

# --- the prefilter: one search of the file's bytes per trigger pattern, no regex per line ---
# A detect-secrets plugin runs on a line only if a trigger of its own occurs in it: each plugin's
# regexes cannot match without one (checked by tests: prefiltered findings == the findings of every
# detector on every line). Each pattern is a literal or starts with one (`re` finds those about as
# fast as bytes.find; an alternation without a common first character is ~10x slower), so plugins
# whose triggers share a first character share a pattern, and its lines go to all of them.
# (pattern, searched in the lowercased bytes, plugin keys)
_TRIGGERS: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    (r"A(?:3T|BIA|CCA|KIA|SIA)", False, ("aws",)),
    (r"P(?:RIVATE KEY|uTTY-User-Key-File)", False, (PRIVATE_KEY,)),
    (r"g(?:h[pousr]_|l(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-)", False, ("github_token", "gitlab_token")),
    ("GR1348941", False, ("gitlab_token",)),
    ("k_live_", False, ("stripe_key",)),
    ("T3BlbkFJ", False, ("openai_key",)),  # "OpenAI" in base64, inside every key
    ("hf_", False, ("huggingface_token",)),
    ("pypi-AgE", False, ("pypi_token",)),
    (r"SG\.", False, ("sendgrid_key",)),
    ("eyJ", False, ("jwt",)),  # '{"' in base64
    (r":(?://|_authToken=)", False, ("url_password", "npm_token", "slack")),  # URLs, Slack webhooks, .npmrc
    ("xox", True, ("slack",)),
    # AWS secret keys (`aws…key…"…"`, case-insensitive) and the names that gate the high-entropy plugins
    (r"a(?:ws|pi_?key|ccess_key|uth)", True, ("aws", "entropy")),
    (r"p(?:assw|wd)", True, ("entropy",)),
    ("secret", True, ("entropy",)),
    ("token", True, ("entropy",)),
    ("credential", True, ("entropy",)),
)
_SECRET_NAMES = r"secret|passw|pwd|token|api_?key|access_key|credential|auth"
_ENTROPY_KEYWORD = re.compile(_SECRET_NAMES, re.IGNORECASE)
# ... and only strings assigned or passed to such a name: `API_KEY = "…"`, `"apiKey": "…"`, `Token("…")`
_ASSIGNED_TO_SECRET = re.compile(
    r"(?:" + _SECRET_NAMES + r")[\w-]*[\"'\]]*\s*(?:=|:|=>|:=|\()\s*[\[(]?\s*[bru]?[\"']$",
    re.IGNORECASE)
# Hash-like contexts: a long hex/base64 string next to these words is a checksum or an id, not a secret.
_HASH_CONTEXT = re.compile(
    r"hash|sha\d|sha-\d|md5|checksum|digest|integrity|commit|revision|\brev\b|fingerprint|etag|nonce|uuid|"
    r"\bsri\b|signature|\bsig\b|_id\b|\bid\b|test_?vector|example|dummy|fake|placeholder|xxx", re.IGNORECASE)
# PII lines: '@' (e-mail); on a copy with the digits mapped to '0' and the other hex digits to 'h':
# "0.0" (IPv4) and ':' before a hex digit or ':' (IPv6: every address of three groups has one).
_HEX_CLASSES = bytes.maketrans(b"0123456789abcdefABCDEF", b"0" * 10 + b"h" * 12)
_AT, _DIGIT_DOT_DIGIT, _COLON_HEX = re.compile(b"@"), re.compile(rb"0\.0"), re.compile(rb":[0h:]")

# --- e-mail ---
_EMAIL = re.compile(
    r"(?<![\w.+%-])([A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9_+-])?)"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-]|\.[A-Za-z0-9])"
)
# RFC 2606 / 6761 reserved names and common placeholders: not anybody's address.
_RESERVED_DOMAINS = frozenset({"example.com", "example.org", "example.net", "example.edu", "localhost",
                               "domain.com", "yourdomain.com", "your-domain.com", "yourcompany.com",
                               "email.com", "mail.example"})
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})  # not .local/.internal: people work there
# "name@2x.png", "pkg@1.2.3.tgz": file names and package specifiers, not addresses.
_FILE_TLDS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "bmp", "tif", "tiff", "js", "mjs", "cjs", "ts", "tsx",
    "jsx", "css", "scss", "less", "py", "pyc", "json", "html", "htm", "xml", "md", "rst", "txt", "yaml", "yml",
    "toml", "lock", "cfg", "ini", "so", "dll", "exe", "zip", "gz", "tgz", "tar", "whl", "egg", "jar", "pdf",
    "mp3", "mp4", "wav", "woff", "woff2", "ttf", "eot", "map", "vue", "java", "rb", "go", "rs", "sh", "bat",
})
# Role addresses of no person; "git@github.com" is the SSH user of a remote.
_ROLE_LOCAL_PARTS = frozenset({"noreply", "no-reply", "donotreply", "do-not-reply", "git"})
# Passwords of examples in docs ("https://user:password@host"): placeholders, not secrets.
_PLACEHOLDER_PASSWORDS = frozenset({"password", "passwd", "pass", "pwd", "secret", "token", "mypassword",
                                    "yourpassword", "your_password", "changeme", "xxx", "xxxx", "***", "****"})
_URL_USERINFO = re.compile(r"://[^\s/@]*$")

# --- IP addresses ---
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\d)")
# Text right before a dotted quad that makes it a version, an OID or a requirement, not an address.
_VERSION_CONTEXT = re.compile(
    r"(?:(?:version|\bver|release|\brev|\boid|\bbuild|\bpython|section|chapter|\brfc|\bpep)\w*|\bv|§|==|>=|<=|~=|!=)"
    r"[\s\"'=:(,-]*$", re.IGNORECASE)
# Placeholders of docs and tests ("convert 123.45.67.89"), not anybody's address.
_PLACEHOLDER_IPS = frozenset({"1.2.3.4", "4.3.2.1", "12.34.56.78", "123.45.67.89", "11.22.33.44", "1.2.3.5"})
# Well-known public resolvers: services, not anybody's address.
_PUBLIC_SERVICE_IPS = frozenset({"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112",
                                 "208.67.222.222", "208.67.220.220", "2001:4860:4860::8888",
                                 "2001:4860:4860::8844", "2606:4700:4700::1111", "2606:4700:4700::1001"})
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# --- private key blocks ---
_KEY_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----")
_PUTTY_BEGIN = re.compile(r"PuTTY-User-Key-File-\d+:")
_PUTTY_END = re.compile(r"Private-MAC: *[0-9a-fA-F]+")
_B64_BODY = re.compile(r"[A-Za-z0-9+/=]{16,}")
MAX_KEY_BLOCK_CHARS = 20_000  # a 16384-bit RSA key in PEM is ~12.7 kB


class Finding(NamedTuple):
    """One secret or PII span ``content[start:end]`` of a record."""

    start: int
    end: int
    kind: str


@dataclass
class SecretsFilterConfig:
    """The ``filters.secrets`` section: what is detected and what happens to a file with findings."""

    mode: str = "redact"
    """redact: replace each finding by a typed placeholder (<SECRET:kind>, <EMAIL>, <IP_ADDRESS>);
    drop: drop the file (reason secrets:<kind> of its first finding); "off" (quoted in YAML: a bare
    off is the boolean false): do nothing."""
    secrets: bool = True
    """Detect API keys, tokens, private keys, passwords in URLs (detect-secrets plugins)."""
    high_entropy: str = "keyword"
    """High-entropy quoted strings (detect-secrets' Base64/Hex plugins): 'keyword' = only strings assigned or
    passed to a name holding secret, passw, pwd, token, api_key, access_key, credential or auth, on a line
    naming no hash or id; 'off'."""
    base64_limit: float = 4.2
    """Shannon-entropy threshold (bits per character) of the Base64 plugin (detect-secrets' default is 4.5, which
    misses most random keys under ~32 characters; the name and alphabet rules keep 4.2 precise)."""
    hex_limit: float = 3.0
    """Shannon-entropy threshold of the Hex plugin (detect-secrets' default 3.0)."""
    min_entropy_length: int = 20
    """High-entropy strings shorter than this are ignored."""
    emails: bool = True
    """Detect e-mail addresses (not example.com & co, role addresses such as noreply@, file names)."""
    ip_addresses: bool = True
    """Detect public IPv4/IPv6 addresses (not private, loopback, link-local, documentation, version strings)."""
    max_scan_chars: int = 300_000
    """Per-file budget: characters of prefiltered lines scanned; past it the file is dropped (secrets:budget)."""
    max_findings: int = 1000
    """Per-file budget: findings; past it the file is dropped (secrets:budget)."""

    def __post_init__(self) -> None:
        if self.mode not in ("redact", "drop", "off"):
            raise ValueError(f"secrets.mode must be redact, drop or off, got {self.mode!r} (write \"off\" quoted in YAML)")
        if self.high_entropy not in ("keyword", "off"):
            raise ValueError(f"secrets.high_entropy must be keyword or off, got {self.high_entropy!r}")
        for name in ("base64_limit", "hex_limit"):
            if not 0.0 <= getattr(self, name) <= 8.0:
                raise ValueError(f"secrets.{name} must be in [0, 8] (bits per character), got {getattr(self, name)}")
        if self.max_scan_chars < 1 or self.max_findings < 1:
            raise ValueError("secrets.max_scan_chars and secrets.max_findings must be >= 1 (they bound the time per file)")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


class BudgetExceeded(Exception):
    """A file needs more scanning than the per-file budget allows."""


# The token-format detect-secrets plugins by their key (as named in _TRIGGERS), in the order they are
# tried: (key, module under detect_secrets.plugins, class); None: ours (below). A table, so that a scanner
# knows its keys without importing detect-secrets (~35 ms: it imports requests), which only a text with
# a candidate line needs.
_REGEX_PLUGINS: tuple[tuple[str, str | None, str | None], ...] = (
    (PRIVATE_KEY, "private_key", "PrivateKeyDetector"), ("aws", "aws", "AWSKeyDetector"),
    ("github_token", "github_token", "GitHubTokenDetector"), ("gitlab_token", "gitlab_token", "GitLabTokenDetector"),
    ("slack", "slack", "SlackDetector"), ("stripe_key", "stripe", "StripeDetector"),
    ("openai_key", "openai", "OpenAIDetector"), ("huggingface_token", None, None),
    ("pypi_token", "pypi_token", "PypiTokenDetector"), ("npm_token", "npm", "NpmDetector"),
    ("sendgrid_key", "sendgrid", "SendGridDetector"), ("jwt", "jwt", "JwtTokenDetector"),
    ("url_password", "basic_auth", "BasicAuthDetector"),
)


def _regex_plugins() -> dict[str, Any]:
    """The token-format detect-secrets plugins by their key, in _REGEX_PLUGINS's order."""
    import importlib

    from detect_secrets.plugins.base import RegexBasedDetector

    class HuggingFaceTokenDetector(RegexBasedDetector):
        """Hugging Face user access tokens (detect-secrets has no plugin for them; its documented way to add one)."""

        secret_type = "Hugging Face Token"
        denylist = (re.compile(r"hf_[A-Za-z0-9]{34}"),)

    return {key: (HuggingFaceTokenDetector() if module is None else
                  getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), cls)())  # type: ignore[arg-type]
            for key, module, cls in _REGEX_PLUGINS}


def _entropy_plugins(cfg: SecretsFilterConfig) -> list[tuple[Any, str]]:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

    return [(HexHighEntropyString(limit=cfg.hex_limit), "high_entropy_hex"),
            (Base64HighEntropyString(limit=cfg.base64_limit), "high_entropy_base64")]


_JWT_TAIL = re.compile(r"[A-Za-z0-9_=+/-]*")


def _occurrences(line: str, value: str) -> list[tuple[int, int]]:
    """Spans of ``value`` in ``line`` not embedded in a longer word (all of them if none stands alone)."""
    spans, loose = [], []
    i = line.find(value)
    while i >= 0 and value:
        j = i + len(value)
        if (i == 0 or not line[i - 1].isalnum()) and (j == len(line) or not line[j].isalnum()):
            spans.append((i, j))
        else:
            loose.append((i, j))
        i = line.find(value, j)
    return spans or loose


def _key_block(content: str, pos: int) -> tuple[int, int] | None:
    """The private key block whose header is at or after ``pos`` on its line: BEGIN to END (or to the last
    base64 line when END is missing). None when no key material follows the header (a parser's constant)."""
    line_end = content.find("\n", pos)
    line_end = len(content) if line_end < 0 else line_end
    m = _KEY_BEGIN.search(content, pos, line_end)
    if m is not None:
        end_marker = f"-----END {m.group(1)}-----"
        stop = content.find(end_marker, m.end(), m.end() + MAX_KEY_BLOCK_CHARS)
        start, body_from = m.start(), m.end()
        end = stop + len(end_marker) if stop >= 0 else -1
    else:
        m = _PUTTY_BEGIN.search(content, pos, line_end)
        if m is None:
            return None
        mac = _PUTTY_END.search(content, m.end(), m.end() + MAX_KEY_BLOCK_CHARS)
        start, body_from = m.start(), m.end()
        end = mac.end() if mac is not None else -1
    if end < 0:
        # no END marker: the key body is the run of base64 lines after the header
        end, at = line_end, line_end + 1
        while at < len(content) and at < body_from + MAX_KEY_BLOCK_CHARS:
            nxt = content.find("\n", at)
            nxt = len(content) if nxt < 0 else nxt
            text = content[at:nxt].strip().strip("\"',+\\n")
            if len(text) < 16 or _B64_BODY.fullmatch(text) is None:
                break
            end, at = nxt, nxt + 1
    body = content[body_from:end]
    if sum(len(b) for b in _B64_BODY.findall(body)) < 64:
        return None
    return start, end


def _placeholder_password(line: str, url_at: int, a: int, b: int) -> bool:
    """A URL password of an example: a placeholder word, a template, the user name again (guest:guest),
    or an example host (user:pw@example.com; localhost and *.local hosts are real ones)."""
    from detect_secrets.filters.heuristic import is_templated_secret

    value = line[a:b]
    user = line[url_at + 3:a - 1]
    host = line[b + 1:b + 80].split("/", 1)[0].split(":", 1)[0].lower().rstrip("'\"`) ")
    tld = host.rsplit(".", 1)[-1]
    return (value.lower() in _PLACEHOLDER_PASSWORDS or value.startswith(("$", "%", "<", "{"))
            or is_templated_secret(value) or value == user or host.startswith("example.") or ".example." in host
            or tld in ("example", "test", "invalid"))


def _email_ok(line: str, m: re.Match[str]) -> bool:
    """Whether an e-mail regex match is somebody's address (not a placeholder, a role, a file or URL userinfo)."""
    local, domain = m.group(1).lower(), m.group(2).lower()
    tld = domain.rsplit(".", 1)[-1]
    if domain in _RESERVED_DOMAINS or tld in _RESERVED_TLDS or tld in _FILE_TLDS:
        return False
    if domain.startswith(("example.", "test.")) or ".example." in domain:
        return False
    if local in _ROLE_LOCAL_PARTS or not any(c.isalpha() for c in local):
        return False  # a role, or a Message-ID such as <20020201195627.33539.96671@host.com>
    return _URL_USERINFO.search(line, 0, m.start()) is None


def _ip_ok(line: str, m: re.Match[str], v6: bool) -> bool:
    """Whether a dotted quad / colon group is a public address (not private, reserved, a version or an OID)."""
    text = m.group(0)
    try:
        addr = ipaddress.IPv6Address(text) if v6 else ipaddress.IPv4Address(text)
    except ValueError:
        return False
    if text in _PUBLIC_SERVICE_IPS or text in _PLACEHOLDER_IPS or not addr.is_global or addr.is_multicast:
        return False
    if v6:
        # at least three groups ("a[1::2]" is a valid address and a slice) and a global unicast prefix
        return sum(1 for g in text.split(":") if g) >= 3 and addr in _IPV6_GLOBAL_UNICAST
    return _VERSION_CONTEXT.search(line, max(0, m.start() - 40), m.start()) is None


def _find_lines(buf: bytes, pattern: re.Pattern[bytes], bit: int, lines: dict[int, list[int]]) -> None:
    """Mark with ``bit`` every line of ``buf`` (split on b'\\n') where ``pattern`` matches: lines[start] = [end, bits]."""
    m = pattern.search(buf)
    while m is not None:
        s = buf.rfind(b"\n", 0, m.start()) + 1
        e = buf.find(b"\n", m.end())
        e = len(buf) if e < 0 else e
        entry = lines.get(s)
        if entry is None:
            lines[s] = [e, bit]
        else:
            entry[1] |= bit
        m = pattern.search(buf, e)


def _to_str_spans(content: str, buf: bytes, lines: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    """(start, end, bits) in ``content``'s character offsets of the lines found in its UTF-8 ``buf``."""
    spans = sorted((s, e, bits) for s, (e, bits) in lines.items())
    if len(buf) == len(content):  # ASCII: byte offsets are character offsets
        return spans
    out, at_byte, at_char = [], 0, 0
    for s, e, bits in spans:
        at_char += len(buf[at_byte:s].decode("utf-8", "surrogatepass"))
        n = len(buf[s:e].decode("utf-8", "surrogatepass"))
        out.append((at_char, at_char + n, bits))
        at_char, at_byte = at_char + n, e
    return out


class SecretsScanner:
    """Finds secrets and PII in a text; picklable (rebuilt from its config in each worker)."""

    def __init__(self, config: SecretsFilterConfig | None = None) -> None:
        self.config = cfg = config or SecretsFilterConfig()
        plugins = [key for key, _, _ in _REGEX_PLUGINS] if cfg.secrets else []
        if cfg.secrets and cfg.high_entropy != "off":
            plugins.append("entropy")
        # one bit per plugin (or the pair of high-entropy plugins), then e-mail, IPv4, IPv6; the plugins
        # themselves are made at the first candidate line one of them must see (_plugins_made)
        self._plugin_keys = plugins
        self._plugin_bits = (1 << len(plugins)) - 1
        self._plugins: list[tuple[int, str, Any]] | None = None
        bit_of = {key: 1 << i for i, key in enumerate(plugins)}
        self._literals = [(sum(bit_of.get(k, 0) for k in keys), re.compile(pat.encode()), lower)
                          for pat, lower, keys in _TRIGGERS if any(k in bit_of for k in keys)]
        self._long_quoted = re.compile(r"[\"'][A-Za-z0-9+/=_\\-]{%d}" % cfg.min_entropy_length)
        n = len(plugins)
        self._email_bit = 1 << n if cfg.emails else 0
        self._ipv4_bit = 1 << (n + 1) if cfg.ip_addresses else 0
        self._ipv6_bit = 1 << (n + 2) if cfg.ip_addresses else 0
        self._all_bits = (1 << (n + 3)) - 1

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def candidate_lines(self, content: str) -> list[tuple[int, int, int]]:
        """(start, end, detector bits) of the lines the prefilter sends to the detectors."""
        buf = content.encode("utf-8", "surrogatepass")
        low = buf.lower() if any(lower for _, _, lower in self._literals) else buf
        lines: dict[int, list[int]] = {}
        for bit, lit, lower in self._literals:
            _find_lines(low if lower else buf, lit, bit, lines)
        if self._email_bit:
            _find_lines(buf, _AT, self._email_bit, lines)
        if self._ipv4_bit:
            classes = buf.translate(_HEX_CLASSES)
            _find_lines(classes, _DIGIT_DOT_DIGIT, self._ipv4_bit, lines)
            _find_lines(classes, _COLON_HEX, self._ipv6_bit, lines)
        return _to_str_spans(content, buf, lines)

    def scan(self, content: str, path: str = "", *, prefilter: bool = True) -> list[Finding]:
        """The findings in ``content``, sorted and non-overlapping. ``prefilter=False`` runs every detector on
        every line (the slow reference the prefilter must match). Raises BudgetExceeded past the budget."""
        cfg = self.config
        if prefilter:
            lines = self.candidate_lines(content)
            scanned = sum(e - s for s, e, _ in lines)
            if scanned > cfg.max_scan_chars:
                raise BudgetExceeded(f"{scanned} characters of candidate lines > max_scan_chars {cfg.max_scan_chars}")
        else:
            lines = [(s, e, self._all_bits) for s, e in _all_lines(content)]
        found: list[Finding] = []
        lock_file = _is_lock_file(path)
        plugins = self._plugins
        if plugins is None:
            plugins = self._plugins_made() if any(bits & self._plugin_bits for _, _, bits in lines) else []
        for s, e, bits in lines:
            line = content[s:e]
            for bit, key, plugin in plugins:
                if bits & bit:
                    if key == "entropy":
                        self._scan_entropy(line, s, plugin, found, lock_file, prefilter)
                    else:
                        self._scan_plugin(content, line, s, key, plugin, found)
            if bits & self._email_bit:
                found.extend(Finding(s + m.start(), s + m.end(), EMAIL) for m in _EMAIL.finditer(line)
                             if _email_ok(line, m))
            if bits & self._ipv4_bit:
                found.extend(Finding(s + m.start(), s + m.end(), IP_ADDRESS)
                             for m in _IPV4.finditer(line) if _ip_ok(line, m, False))
            if bits & self._ipv6_bit:
                found.extend(Finding(s + m.start(), s + m.end(), IP_ADDRESS)
                             for m in _IPV6.finditer(line) if _ip_ok(line, m, True))
            if len(found) > cfg.max_findings:
                raise BudgetExceeded(f"more than max_findings {cfg.max_findings} findings")
        return merge_findings(found)

    def _plugins_made(self) -> list[tuple[int, str, Any]]:
        """(bit, key, plugin) of each plugin, made once (the same plugins whenever they are made)."""
        plugins = _regex_plugins() if self.config.secrets else {}
        if "entropy" in self._plugin_keys:
            plugins["entropy"] = _entropy_plugins(self.config)
        assert list(plugins) == self._plugin_keys
        self._plugins = [(1 << i, key, plugin) for i, (key, plugin) in enumerate(plugins.items())]
        return self._plugins

    @staticmethod
    def _scan_plugin(content: str, line: str, s: int, key: str, plugin: Any, found: list[Finding]) -> None:
        # The plugin's own compiled `denylist` regexes, for the spans (analyze_string yields values only,
        # and for patterns with a prefix group only the prefix: "ghp").
        if key == PRIVATE_KEY:
            # the plugin's headers, or any PEM "BEGIN ... PRIVATE KEY" (it misses ENCRYPTED PRIVATE KEY)
            if any(rx.search(line) for rx in plugin.denylist) or _KEY_BEGIN.search(line):
                block = _key_block(content, s)
                if block is not None:
                    found.append(Finding(block[0], block[1], PRIVATE_KEY))
            return
        for rx in plugin.denylist:
            for m in rx.finditer(line):
                a, b = m.span()
                kind = key
                if key == "aws":
                    kind = "aws_access_key" if m.lastindex is None else "aws_secret_key"
                elif key == "slack":
                    kind = "slack_webhook" if m.group(0).lower().startswith("https://") else "slack_token"
                elif key == "jwt":
                    # the regex's signature part is lazy (matches nothing): take the whole signature
                    b = m.end() + len(_JWT_TAIL.match(line, m.end()).group(0))  # type: ignore[union-attr]
                    if not plugin.is_formally_valid(line[a:b].rstrip(".")):
                        continue
                if kind in _STANDALONE and ((a > 0 and line[a - 1].isalnum()) or (b < len(line) and line[b].isalnum())):
                    continue  # inside a longer run (a base64 blob, a DNA sequence): not a key of fixed length
                if m.lastindex and key in ("aws", "url_password", "npm_token"):
                    a, b = m.span(1)  # the secret group (the rest is the key name or the URL)
                    if key == "url_password" and _placeholder_password(line, m.start(), a, b):
                        continue
                if b > a:
                    found.append(Finding(s + a, s + b, kind))

    def _scan_entropy(self, line: str, s: int, plugins: Any, found: list[Finding], lock_file: bool,
                      prefilter: bool) -> None:
        # cheapest test first: a quoted run long enough (both plugins need one: quotes around their charset)
        if lock_file or (prefilter and self._long_quoted.search(line) is None):
            return
        if not _ENTROPY_KEYWORD.search(line) or _HASH_CONTEXT.search(line):
            return
        for plugin, kind in plugins:
            for value in plugin.analyze_string(line):
                if self._is_entropy_secret(plugin, value):
                    found.extend(Finding(s + a, s + b, kind) for a, b in _occurrences(line, value)
                                 if _ASSIGNED_TO_SECRET.search(line, max(0, a - 120), a))

    def _is_entropy_secret(self, plugin: Any, value: str) -> bool:
        from detect_secrets.filters.heuristic import (
            is_potential_uuid,
            is_sequential_string,
            is_templated_secret,
        )

        return (len(value) >= self.config.min_entropy_length
                and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit
                and not is_sequential_string(value) and not is_potential_uuid(value)
                and not is_templated_secret(value) and not _is_alphabet(value))


def _is_alphabet(value: str) -> bool:
    """Mostly consecutive characters ("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", the amino acids "ACDEFGHIKLMNPQRSTVWY"),
    or one class of characters only (all capitals): an alphabet, not a key (random base64 has ~1/64 such pairs)."""
    steps = sum(1 for a, b in zip(value, value[1:]) if ord(b) == ord(a) + 1)
    return steps >= 0.5 * (len(value) - 1) or value.isalpha() and (value.isupper() or value.islower())


def _all_lines(content: str) -> list[tuple[int, int]]:
    spans, s = [], 0
    while s <= len(content):
        e = content.find("\n", s)
        e = len(content) if e < 0 else e
        spans.append((s, e))
        s = e + 1
    return spans


# Every name detect-secrets' is_lock_file knows ends with one of these: other paths need no call
# (stream asks for each record's rewrite_key; the call imports and builds its set each time).
_LOCK_FILE_SUFFIXES = (".lock", ".json", ".resolved")


def _is_lock_file(path: str) -> bool:
    if not path.endswith(_LOCK_FILE_SUFFIXES):
        return False
    from detect_secrets.filters.heuristic import is_lock_file

    return is_lock_file(path)


_GENERIC_KINDS = ("high_entropy_hex", "high_entropy_base64")
# fixed-length key formats: a match inside a longer alphanumeric run is not one
_STANDALONE = frozenset({"aws_access_key", "github_token", "stripe_key", "huggingface_token"})


def merge_findings(found: list[Finding]) -> list[Finding]:
    """Sorted, non-overlapping findings: overlapping spans are joined under the kind of the longest
    (on a tie, a named kind beats a high-entropy string)."""
    out: list[Finding] = []
    for f in sorted(set(found), key=lambda f: (f.start, -f.end, f.kind in _GENERIC_KINDS, f.kind)):
        if out and f.start < out[-1].end:
            last = out[-1]
            if f.end > last.end:
                kind = last.kind if last.end - last.start >= f.end - f.start else f.kind
                out[-1] = Finding(last.start, f.end, kind)
            continue
        out.append(f)
    return out


def redact(content: str, findings: list[Finding]) -> str:
    """``content`` with each finding replaced by its placeholder; every other character unchanged."""
    parts, at = [], 0
    for f in findings:
        parts.append(content[at:f.start])
        parts.append(PLACEHOLDERS[f.kind])
        at = f.end
    parts.append(content[at:])
    return "".join(parts)


def _example_line(redacted: str, placeholder: str) -> str:
    """The (redacted) line holding the first ``placeholder``, cut to 300 characters around it."""
    i = redacted.find(placeholder)
    s = redacted.rfind("\n", 0, i) + 1
    e = redacted.find("\n", i)
    e = len(redacted) if e < 0 else e
    lo = max(s, i - 150)
    return redacted[lo:min(e, i + len(placeholder) + 150)]


def score_labelled(scanner: SecretsScanner, rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """True/false positives and false negatives per kind of ``scanner`` on labelled snippets.

    Each row is ``{"text": ..., "secrets": [{"value": ..., "kind": ...}, ...]}``; a finding is right when
    it overlaps a labelled value of its kind (tests/data/secrets_labelled.jsonl is such a set).
    """
    score: dict[str, dict[str, int]] = {}
    for row in rows:
        text = row["text"]
        expected = []
        for s in row["secrets"]:
            at = text.find(s["value"])
            expected.append((at, at + len(s["value"]), s["kind"]))
        hit = set()
        for f in scanner.scan(text, "snippet.py"):
            match = [e for e in expected if e[2] == f.kind and f.start < e[1] and e[0] < f.end]
            counts = score.setdefault(f.kind, {})
            counts["tp" if match else "fp"] = counts.get("tp" if match else "fp", 0) + 1
            hit.update(match)
        for e in expected:
            if e not in hit:
                counts = score.setdefault(e[2], {})
                counts["fn"] = counts.get("fn", 0) + 1
    return score


class SecretsFilter(Filter):
    """Redacts (or drops files with) secrets and PII; the one filter that rewrites ``record.content``.

    In both modes the record's content is replaced by its redacted text (so a dropped file's example
    in the report shows no secret). Drop reasons: ``secrets:<kind>`` (drop mode, the kind of the first
    finding), ``secrets:budget`` (any mode: the file needs more scanning than the per-file budget).
    """

    name = "secrets"

    def __init__(self, config: SecretsFilterConfig | None = None) -> None:
        self.config = config or SecretsFilterConfig()
        self.scanner = SecretsScanner(self.config)

    def filter(self, record: CodeFile) -> str | None:
        reason, _ = self.rewrite(record)
        return reason

    def rewrite_key(self, record: CodeFile) -> Any:
        """The redaction depends on the content and on whether the path names a lock file, nothing else."""
        return _is_lock_file(record.path)

    def rewrite(self, record: CodeFile) -> tuple[str | None, Edit | None]:
        """Scan ``record``; redact its content in place. Returns (drop reason or None, what was done or None)."""
        try:
            findings = self.scanner.scan(record.content, record.path)
        except BudgetExceeded:
            record.content = ""  # nothing unscanned may reach the report's examples
            return f"{self.name}:{BUDGET}", None
        if not findings:
            return None, None
        redacted = redact(record.content, findings)
        record.content = redacted
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        examples = {k: _example_line(redacted, PLACEHOLDERS[k]) for k in counts}
        if self.config.mode == "drop":
            return f"{self.name}:{findings[0].kind}", None
        return None, Edit(self.name, counts, examples)
