"""Writes tests/data/secrets_labelled.jsonl: code snippets labelled with the secrets / PII they hold.

Each line: {"id", "text", "secrets": [{"kind", "value"}], "note"}. Values are generated with a seeded
RNG in each service's real format (never real credentials); negatives are look-alikes that occur in
real code (hashes, UUIDs, versions, reserved addresses, parser constants, placeholders, env lookups).
Re-run to regenerate (deterministic): python tests/data/make_secrets_labelled.py
"""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

R = random.Random(15)
UP, LO, DI = string.ascii_uppercase, string.ascii_lowercase, string.digits
AN = UP + LO + DI


def rs(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def aws_id() -> str:
    return R.choice(["AKIA", "ASIA"]) + rs(UP + DI, 16)


def aws_secret() -> str:
    return rs(AN + "/+", 40)


def github() -> str:
    return R.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + rs(AN, 36)


def slack() -> str:
    return f"xox{R.choice('bpa')}-{rs(DI, 12)}-{rs(DI, 13)}-{rs(LO + DI, 24)}"


def slack_hook() -> str:
    return f"https://hooks.slack.com/services/T{rs(UP + DI, 8)}/B{rs(UP + DI, 8)}/{rs(AN, 24)}"


def stripe() -> str:
    return R.choice(["sk_live_", "rk_live_"]) + rs(AN, 24)


def jwt() -> str:
    head = b64({"alg": R.choice(["HS256", "RS256"]), "typ": "JWT"})
    body = b64({"sub": rs(DI, 8), "name": R.choice(["Ana", "Bo", "Chen"]), "iat": R.randint(1500000000, 1700000000)})
    return f"{head}.{body}.{rs(AN + '-_', 43)}"


def pem(kind: str = "RSA PRIVATE KEY", lines: int = 6) -> str:
    body = "\n".join(rs(AN + "+/", 64) for _ in range(lines))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def password() -> str:
    return rs(AN, R.randint(10, 18))


def public_ip() -> str:
    while True:
        a = R.choice([3, 13, 18, 34, 35, 44, 52, 54, 66, 104, 142, 151, 185, 212])
        ip = f"{a}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
        return ip


def public_ip6() -> str:
    return R.choice(["2607:f8b0:4005:80a::200e", "2a03:2880:f12f:83:face:b00c:0:25de", "2600:1f18:24e6:b900:1c3a:8b2f:4d5e:9a01",
                     "2a00:1450:4001:82b::200e", "2001:67c:2e8:22::c100:68b"])


FIRST = ["jane", "li.wei", "m.rossi", "oscar", "priya.k", "tom_b", "anna-maria", "k.nakamura", "dev.ops", "j.smith"]
DOMAINS = ["gmail.com", "acme-corp.io", "uni-heidelberg.de", "mail.ru", "outlook.com", "fastmail.fm", "bigco.co.uk",
           "startup.ai", "proton.me", "company.org"]


def email() -> str:
    return f"{R.choice(FIRST)}{R.choice(['', str(R.randint(1, 99))])}@{R.choice(DOMAINS)}"


ROWS: list[dict] = []


def add(text: str, secrets: list[tuple[str, str]], note: str) -> None:
    for _, v in secrets:
        assert v in text, (v, text)
    ROWS.append({"id": len(ROWS), "text": text, "secrets": [{"kind": k, "value": v} for k, v in secrets], "note": note})


def positives() -> None:
    for i in range(10):
        k = aws_id()
        add(R.choice([f'AWS_ACCESS_KEY_ID = "{k}"\n', f"aws_access_key_id={k}\n", f"  AccessKeyId: {k}\n",
                      f"client = boto3.client('s3', aws_access_key_id='{k}')\n",
                      f'export AWS_ACCESS_KEY_ID={k}\n']), [("aws_access_key", k)], "aws key id")
    for i in range(6):
        k, s = aws_id(), aws_secret()
        add(f'aws_access_key_id = "{k}"\naws_secret_access_key = "{s}"\n',
            [("aws_access_key", k), ("aws_secret_key", s)], "aws id + secret")
    for i in range(10):
        t = github()
        add(R.choice([f'GITHUB_TOKEN = "{t}"\n', f"headers = {{'Authorization': 'token {t}'}}\n",
                      f"git clone https://{t}@github.com/org/repo.git\n", f"// token: {t}\n",
                      f"  - GH_PAT={t}\n"]), [("github_token", t)], "github token")
    for i in range(8):
        t = slack()
        add(R.choice([f'SLACK_BOT_TOKEN = "{t}"\n', f"client = WebClient(token='{t}')\n", f"slack_token: {t}\n"]),
            [("slack_token", t)], "slack token")
    for i in range(4):
        h = slack_hook()
        add(f'WEBHOOK_URL = "{h}"\nrequests.post(WEBHOOK_URL, json={{"text": msg}})\n', [("slack_webhook", h)], "slack webhook")
    for i in range(8):
        t = stripe()
        add(R.choice([f'stripe.api_key = "{t}"\n', f"const stripe = require('stripe')('{t}');\n",
                      f"STRIPE_SECRET_KEY={t}\n"]), [("stripe_key", t)], "stripe live key")
    for i in range(8):
        t = jwt()
        add(R.choice([f'token = "{t}"\n', f"curl -H 'Authorization: Bearer {t}' https://api.internal/v1\n",
                      f"    \"id_token\": \"{t}\",\n"]), [("jwt", t)], "jwt")
    for kind in ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "DSA PRIVATE KEY",
                 "RSA PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]:
        p = pem(kind, R.randint(3, 10))
        add(R.choice([f'KEY = """{p}"""\n', f"{p}\n", f"private_key: |\n  " + p.replace("\n", "\n  ") + "\n"]),
            [("private_key", p.splitlines()[1])], "pem block (the value checked: its first body line)")
    for i in range(2):
        p = pem("RSA PRIVATE KEY", 4)
        one = p.replace("\n", "\\n")
        add(f'PRIVATE_KEY = "{one}"\n', [("private_key", one)], "pem block with \\n escapes on one line")
    for i in range(10):
        pw = password()
        user = R.choice(["admin", "app", "postgres", "deploy", "svc_etl"])
        host = R.choice(["db.prod.mycorp.net", "10.0.3.7", "mongo-0.cluster.local", "rabbit.acme.io"])
        scheme = R.choice(["postgresql", "mysql", "mongodb", "amqp", "https", "ftp", "redis"])
        add(R.choice([f'DATABASE_URL = "{scheme}://{user}:{pw}@{host}:5432/app"\n',
                      f"engine = create_engine('{scheme}://{user}:{pw}@{host}/db')\n",
                      f"  url: {scheme}://{user}:{pw}@{host}\n"]), [("url_password", pw)], "password in url")
    for i in range(30):
        e = email()
        text = R.choice([f"# Author: Jane Doe <{e}>\n", f'__email__ = "{e}"\n', f"    maintainer_email='{e}',\n",
                         f"Contact {e} for access.\n", f'<a href="mailto:{e}">mail us</a>\n',
                         f"send_mail(subject, body, 'ops@bigco.co.uk', ['{e}'])\n",
                         f"git commit --author=\"Dev <{e}>\"\n"])
        found = [("email", e)] + ([("email", "ops@bigco.co.uk")] if "ops@bigco.co.uk" in text and e != "ops@bigco.co.uk" else [])
        add(text, found, "email")
    for i in range(24):
        ip = public_ip()
        add(R.choice([f'SERVER = "{ip}"\n', f"    host: {ip}\n", f"ssh deploy@{ip} 'systemctl restart app'\n",
                      f"requests.get('http://{ip}:8080/health')\n", f"ALLOWED_HOSTS = ['{ip}', 'localhost']\n",
                      f"# blocked {ip} after abuse report\n"]),
            [("ip_address", ip)], "public ipv4")
    for i in range(6):
        ip = public_ip6()
        add(R.choice([f'upstream = "[{ip}]:443"\n', f"server_ip6 = '{ip}'\n", f"    - {ip}\n"]), [("ip_address", ip)],
            "public ipv6")
    for i in range(8):
        s = rs(AN, R.randint(28, 40))
        add(R.choice([f'API_KEY = "{s}"\n', f"client_secret = '{s}'\n", f'    "apiKey": "{s}",\n',
                      f"SECRET_TOKEN = '{s}'\n"]), [("high_entropy_base64", s)], "high-entropy keyed secret")
    for i in range(4):
        s = rs("0123456789abcdef", 32)
        add(f'api_secret = "{s}"\n', [("high_entropy_hex", s)], "hex keyed secret")
    # several in one snippet
    for i in range(4):
        k, e, ip = aws_id(), email(), public_ip()
        add(f"# owner: {e}\nAWS_KEY = '{k}'\nBASTION = '{ip}'\n", [("email", e), ("aws_access_key", k),
                                                                   ("ip_address", ip)], "mixed")
    for i in range(5):
        t = "hf_" + rs(AN, 34)
        add(R.choice([f'HF_TOKEN = "{t}"\n', f"login(token='{t}')\n", f"export HUGGING_FACE_HUB_TOKEN={t}\n"]),
            [("huggingface_token", t)], "hugging face token")
    # realistic misses kept in the set (the detectors do not find them)
    add('SECRET_KEY = "django-insecure-k3$9x!q@z#w7e^r&t*y(u)i_o+p=a[s]d{f}g"\n',
        [("high_entropy_base64", "django-insecure-k3$9x!q@z#w7e^r&t*y(u)i_o+p=a[s]d{f}g")],
        "django secret with symbols (outside the base64 charset): missed")
    pw = password()
    add(f'REDIS_URL = "redis://:{pw}@cache.mycorp.net:6379/0"\n', [("url_password", pw)],
        "password with an empty user: BasicAuthDetector needs a user: missed")
    k = aws_id()
    add(f'key = "{k[:8]}" \\\n    "{k[8:]}"\n', [("aws_access_key", k[:8])], "key split across lines: missed")


def negatives() -> None:
    for i in range(10):
        h = rs("0123456789abcdef", 64)
        add(R.choice([f'    {{file = "pkg-1.0-py3-none-any.whl", hash = "sha256:{h}"}},\n',
                      f'  "integrity": "sha512-{base64.b64encode(bytes(R.randrange(256) for _ in range(64))).decode()}",\n',
                      f"requests==2.31.0 --hash=sha256:{h}\n", f"EXPECTED_SHA256 = '{h}'\n",
                      f'checksum: "{h}"\n']), [], "hash in lock/requirements file")
    for i in range(8):
        sha = rs("0123456789abcdef", 40)
        add(R.choice([f"git checkout {sha}\n", f'rev = "{sha}"\n', f"    commit: {sha}\n",
                      f"# fixed in {sha[:12]}\n", f"COMMIT_SHA = '{sha}'\n"]), [], "git sha")
    for i in range(8):
        u = f"{rs('0123456789abcdef', 8)}-{rs('0123456789abcdef', 4)}-4{rs('0123456789abcdef', 3)}-a{rs('0123456789abcdef', 3)}-{rs('0123456789abcdef', 12)}"
        add(R.choice([f'request_id = "{u}"\n', f"    id: {u}\n", f"DEVICE_UUID = uuid.UUID('{u}')\n",
                      f'token_id = "{u}"\n']), [], "uuid")
    for v in ["1.2.3.4", "2.0.0.1", "10.2.3.4", "3.11.4.1", "4.0.1.2"]:
        add(R.choice([f'version = "{v}"\n', f"__version__ = '{v}'\n", f"pkg=={v}\n", f"Version: {v}\n",
                      f'VERSION_INFO = "v{v}"\n']), [], "version number")
    for v in ["1.3.6.1.4.1.311.60.2.1.3", "2.5.29.17", "1.2.840.113549.1.1.11"]:
        add(f"OID_X = '{v}'\n", [], "oid")
    for ip in ["127.0.0.1", "0.0.0.0", "10.0.0.1", "192.168.1.10", "172.16.0.5", "169.254.169.254", "192.0.2.33",
               "198.51.100.7", "203.0.113.9", "255.255.255.0", "8.8.8.8", "1.1.1.1", "224.0.0.251", "100.64.1.1"]:
        add(R.choice([f'HOST = "{ip}"\n', f"    bind: {ip}\n", f"ping {ip}\n"]), [], "reserved / private / service ip")
    for ip in ["::1", "fe80::1ff:fe23:4567:890a", "2001:db8::8a2e:370:7334", "fd12:3456:789a:1::1", "::ffff:10.0.0.1"]:
        add(f'addr = "{ip}"\n', [], "reserved ipv6")
    for line in ["x = a[1::2]\n", "t = '12:30:45'\n", "mac = '00:1a:2b:3c:4d:5e'\n", "d = {a:b for a, b in x}\n",
                 "print(f'{h:02d}:{m:02d}:{s:02d}')\n", "re.compile(r'(?::[0-9]+)?')\n"]:
        add(line, [], "colon look-alike")
    for e in ["user@example.com", "jane.doe@example.org", "admin@test.example", "foo@localhost", "noreply@github.com",
              "no-reply@accounts.google.com", "git@github.com:org/repo.git", "icon@2x.png", "logo@3x.jpg",
              "you@yourdomain.com", "name@domain.com", "john@example.net", "bot@ci.invalid"]:
        add(R.choice([f'EMAIL = "{e}"\n', f"# e.g. {e}\n", f"    {e}\n"]), [], "placeholder / role / file e-mail look-alike")
    for line in ["@property\ndef name(self):\n", "@app.route('/api/<int:id>')\n", "import '@babel/core';\n",
                 "x = a @ b\n", "\"dependencies\": {\"@types/node\": \"^20.1.0\"}\n", "@pytest.mark.parametrize('a', [1])\n",
                 "email = f'{user}@{domain}'\n", "print('%s@%s' % (user, host))\n", "  pattern: '^[\\w.]+@[\\w.]+$'\n"]:
        add(line, [], "@ look-alike")
    for line in ['if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n',
                 "PEM_HEADER = '-----BEGIN PRIVATE KEY-----'\n",
                 "# Generate with: openssl genrsa -out key.pem; it starts with -----BEGIN RSA PRIVATE KEY-----\n",
                 "-----BEGIN PUBLIC KEY-----\n" + rs(AN + "+/", 64) + "\n-----END PUBLIC KEY-----\n",
                 "-----BEGIN CERTIFICATE-----\n" + rs(AN + "+/", 64) + "\n-----END CERTIFICATE-----\n"]:
        add(line, [], "pem look-alike")
    for line in ['password = os.environ["DB_PASSWORD"]\n', "token = get_token(user)\n", "API_KEY = '${API_KEY}'\n",
                 "secret = config['secret']\n", 'password: "{{ vault_db_password }}"\n', "auth_token = None\n",
                 "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n", "api_key = 'YOUR_API_KEY_HERE'\n",
                 "password = '<password>'\n", "token = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n", "stripe.api_key = 'sk_test_abc'\n",
                 "SECRET = 'changeme'\n", "auth = ('user', 'pass')\n", "ghp_ = 'prefix for personal tokens'\n",
                 "TOKEN_RE = re.compile(r'ghp_[A-Za-z0-9_]{36}')\n", "xoxb = 'slack bot token prefix'\n",
                 "password = 'abcdefghijklmnopqrstuvwxyz012345'\n", "tokens = tokenize.generate_tokens(f.readline)\n",
                 "access_key = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'\n"]:
        add(line, [], "secret-named look-alike")
    for line in ["https://docs.python.org/3/library/re.html\n", "url = 'https://user@host.com/path'\n",
                 "git+ssh://git@github.com/org/pkg.git#egg=pkg\n", "http://localhost:8000/api\n",
                 "ftp://anonymous@ftp.example.com/pub\n", "postgresql://localhost/mydb\n",
                 "DATABASE_URL = 'postgres://user:${DB_PASSWORD}@db:5432/app'\n"]:
        add(line, [], "url look-alike")
    for line in ["data = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='\n",
                 "ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'\n",
                 "color = '#ff00aa'\n", "BUILD = '20231104.1'\n", "x = 0.5 * y + 1.25\n", "pi = 3.14159265358979\n",
                 "timeout=1.0.0\n", "lat, lon = 52.5200, 13.4050\n"]:
        add(line, [], "other look-alike")
    for i in range(6):
        add(f'eyJ_prefix = "eyJ{rs(AN, 10)}"\n', [], "eyJ prefix without a JWT structure")
    add("from huggingface_hub import hf_hub_download\npath = hf_hub_download(repo_id='gpt2')\n", [], "hf_ prefix")
    for line in ["          'AAACCATCTCTACCGGTTCGCTTTCACTGGATATCGCGCTTG'\n",
                 'tokenizer = AutoTokenizer.from_pretrained("naver-hyperclovax/HyperCLOVAX-SEED-Think-14B")\n',
                 '_no_split_modules = ["Qwen2_5OmniToken2WavDiTModel", "Qwen2_5OmniToken2WavBigVGANModel"]\n',
                 "broker_url = 'amqp://guest:guest@localhost:5672//'\n", "# per section 8.1.2.2 of the HTML spec\n",
                 "Message-ID: <20020201195627.33539.96671@nightshade.la.mastaler.com>\n"]:
        add(line, [], "look-alike seen in real files of this installation")


def main() -> None:
    positives()
    negatives()
    out = Path(__file__).with_name("secrets_labelled.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    pos = sum(1 for r in ROWS if r["secrets"])
    print(f"{out}: {len(ROWS)} snippets ({pos} with secrets, {len(ROWS) - pos} look-alikes)")


if __name__ == "__main__":
    main()
