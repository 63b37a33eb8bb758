"""PII benchmark: span-level recall and precision of `llm_workbench.data.pii`, what it redacts in real standard-library code, and its speed.

1. A labelled set generated here with a fixed seed: PII of every kind planted in realistic code and prose (emails, public IPv4/IPv6
   addresses, phone numbers in international and national formats, Luhn-valid card numbers, secrets in a dozen formats), and
   look-alikes that must stay (versions, OIDs, dates, digests, UUIDs, floats, ranges, decorators, ssh logins, ports, slices, MAC
   addresses, hash constants, reserved and documentation values, placeholder secrets). Items are joined into multi-line documents.
   A finding counts as a true positive only when start, end and kind all match a planted span.
2. `known_limits`: planted PII that the policy knowingly does not catch (bare national numbers with no phone word, short human
   passwords, rare TLDs, bare digit runs); reported apart, not in the headline figures.
3. The standard library: a seeded sample of .py files, with every finding listed so it can be judged by hand
   (`--site-packages N` does the same for N files of the installed packages).
Prints one JSON object and writes benchmarks/results/pii.json (or --out). Budget: well under a minute on 2 busy CPU cores.
"""

import argparse, base64, ipaddress, json, os, platform, random, string, sys, sysconfig, time
from collections import Counter, defaultdict
from pathlib import Path
from llm_workbench.data.pii import PLACEHOLDERS, PII_KINDS, find_pii, redact_pii, luhn_valid

MARK = '§'  # where a template takes its value
B62 = string.ascii_letters + string.digits
B64 = B62 + '+/'
HEX = '0123456789abcdef'
FIRST = (
    'james mary robert patricia john jennifer michael linda david elizabeth william barbara richard susan joseph jessica thomas sarah '
    'wei fatima olga hiroshi priya mateo sofia lukas amelie noah chloe ahmed yuki carlos ingrid'.split()
)
LAST = (
    'smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez wilson anderson taylor moore '
    'muller schmidt dubois rossi tanaka kowalski nguyen okafor svensson patel kim novak'.split()
)
DOMAINS = (
    'gmail.com outlook.com yahoo.co.uk web.de proton.me icloud.com acme-corp.com uni-heidelberg.de cs.stanford.edu mail.ru '
    'bigco.net startup.ai dept.gov.uk posteo.de company.io orange.fr bluewin.ch example-shop.nl hospital.org.au t-online.de'.split()
)
WORDS = 'alpha beta config model train data loader batch token value result index cache server client worker queue'.split()


def rs(rng, alphabet, n):
    return ''.join(rng.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------- planted values, one generator per kind and format
def gen_email(rng):
    f, l, d = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    local = rng.choice(
        [
            f'{f}.{l}',
            f'{f[0]}{l}',
            f'{f}_{l}{rng.randint(1, 99)}',
            f'{f}+{rng.choice(WORDS)}',
            f'{l}.{f}-{rng.randint(1, 9)}',
            f'{f}{rng.randint(1970, 2005)}',
            f'{f.capitalize()}.{l.capitalize()}',
        ]
    )
    return f'{local}@{d}'


def _personal_v4(a):
    ip = ipaddress.IPv4Address(a)
    parts = [int(p) for p in a.split('.')]
    return (
        ip.is_global
        and not ip.is_multicast
        and parts[3] not in (0, 255)
        and not all(p < 32 for p in parts)
        and not all(p < 10 for p in parts[:3])
    )


def gen_ipv4(rng):
    while True:
        a = '.'.join(
            str(x)
            for x in (rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
        )
        if _personal_v4(a):
            return a


def gen_ipv6(rng):
    groups = [rng.choice(['2001', '2a00', '2a02', '2600', '2604', '2800', '2c0f', '3fff'][:7])] + [
        format(rng.randint(0, 0xFFFF), 'x') for _ in range(7)
    ]
    if groups[0] == '2001' and groups[1] == 'db8':
        groups[1] = '4860'
    if rng.random() < 0.5:  # a compressible run of zeros
        i = rng.randint(3, 5)
        groups[i : i + 2] = ['0', '0']
    ip = ipaddress.IPv6Address(':'.join(groups))
    return ip.compressed if rng.random() < 0.7 else ip.exploded


def _nanp(rng):
    while True:
        a, e, l = rng.randint(200, 999), rng.randint(200, 999), rng.randint(0, 9999)
        if not (e == 555 and 100 <= l <= 199) and a % 100 != 11:
            return str(a), str(e), f'{l:04d}'


def gen_phone_intl(rng):
    d = lambda n: rs(rng, string.digits, n)
    a, e, l = _nanp(rng)
    return rng.choice(
        [
            f'+1 {a} {e} {l}',
            f'+1-{a}-{e}-{l}',
            f'+1 ({a}) {e}-{l}',
            f'+1{a}{e}{l}',
            f'+1.{a}.{e}.{l}',
            f'+44 20 7{d(3)} {d(4)}',
            f'+44 7{d(3)} {d(6)}',
            f'+44 (0)20 7{d(3)} {d(4)}',
            f'+49 30 {d(8)}',
            f'+49 89 {d(4)} {d(4)}',
            f'+49 151 {d(8)}',
            f'+33 1 {d(2)} {d(2)} {d(2)} {d(2)}',
            f'+33 6 {d(2)} {d(2)} {d(2)} {d(2)}',
            f'+91 98{d(3)} {d(5)}',
            f'+81 3-{d(4)}-{d(4)}',
            f'+81 90-{d(4)}-{d(4)}',
            f'+61 2 {d(4)} {d(4)}',
            f'+61 4{d(2)} {d(3)} {d(3)}',
            f'+55 11 9{d(4)}-{d(4)}',
            f'+31 20 {d(3)} {d(4)}',
            f'+86 138 {d(4)} {d(4)}',
            f'+34 91 {d(3)} {d(2)} {d(2)}',
            f'+39 06 {d(4)} {d(4)}',
            f'+46 8 {d(3)} {d(3)} {d(2)}',
            f'+353 1 {d(3)} {d(4)}',
        ]
    )


def gen_phone_nanp(rng):
    a, e, l = _nanp(rng)
    return rng.choice(
        [
            f'({a}) {e}-{l}',
            f'{a}-{e}-{l}',
            f'{a}.{e}.{l}',
            f'1-{a}-{e}-{l}',
            f'({a}) {e} {l}',
            f'({a}){e}-{l}',
        ]
    )


def gen_phone_national(rng):
    "Formats that need a phone word nearby (plant them only with one)."
    d = lambda n: rs(rng, string.digits, n)
    a, e, l = _nanp(rng)
    return rng.choice(
        [
            f'030 {d(8)}',
            f'020 7{d(3)} {d(4)}',
            f'07{d(3)} {d(6)}',
            f'01 {d(2)} {d(2)} {d(2)} {d(2)}',
            f'(089) {d(7)}',
            f'{a} {e} {l}',
            f'06-{d(8)}',
            f'0{d(2)} {d(3)} {d(2)} {d(2)}',
        ]
    )


CARD_PREFIXES = [
    ('4', 16),
    ('51', 16),
    ('53', 16),
    ('55', 16),
    ('2221', 16),
    ('2720', 16),
    ('34', 15),
    ('37', 15),
    ('6011', 16),
    ('65', 16),
    ('3530', 16),
    ('3589', 16),
    ('36', 14),
    ('62', 16),
]


def gen_card(rng):
    while True:
        pre, n = rng.choice(CARD_PREFIXES)
        body = pre + rs(rng, string.digits, n - len(pre) - 1)
        num = next(body + c for c in string.digits if luhn_valid(body + c))
        v = int(num)
        if not any(x & (x - 1) == 0 for x in (v - 1, v, v + 1)):
            break
    if n == 15:
        return rng.choice([num, f'{num[:4]} {num[4:10]} {num[10:]}', f'{num[:4]}-{num[4:10]}-{num[10:]}'])
    if n == 14:
        return num
    sep = rng.choice(['', ' ', '-'])
    return sep.join(num[i : i + 4] for i in range(0, 16, 4))


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def gen_jwt(rng):
    h = _b64url(json.dumps({'alg': rng.choice(['HS256', 'RS256']), 'typ': 'JWT'}).encode())
    p = _b64url(
        json.dumps(
            {
                'sub': str(rng.randint(10**5, 10**9)),
                'name': rng.choice(FIRST),
                'iat': rng.randint(1_500_000_000, 1_800_000_000),
            }
        ).encode()
    )
    return f'{h}.{p}.{rs(rng, B62 + "-_", 43)}'


def gen_pem(rng):
    kind = rng.choice(['RSA ', 'EC ', 'OPENSSH ', '', 'ENCRYPTED ', 'DSA '])
    lines = [rs(rng, B64, 64) for _ in range(rng.randint(4, 25))] + [rs(rng, B64, rng.randint(8, 60)) + '==']
    hdr = (
        ['Proc-Type: 4,ENCRYPTED', f'DEK-Info: AES-128-CBC,{rs(rng, HEX.upper(), 32)}', '']
        if kind == 'RSA ' and rng.random() < 0.3
        else []
    )
    return '\n'.join([f'-----BEGIN {kind}PRIVATE KEY-----', *hdr, *lines, f'-----END {kind}PRIVATE KEY-----'])


def gen_password(rng, n=None):
    while True:
        v = rs(rng, B62 + '!#%&*+-=?^_~', n or rng.randint(16, 32))
        if any(c.isdigit() for c in v) and any(c.isalpha() for c in v) and v[0] not in '-+':
            return v


SECRET_GENS = {  # name: (value generator, templates); the value is what gets replaced
    'aws_key_id': (
        lambda r: rng_choice(r, ['AKIA', 'ASIA']) + rs(r, string.ascii_uppercase + string.digits, 16),
        [
            'aws_access_key_id = §',
            'AWS_ACCESS_KEY_ID="§"',
            "session = boto3.Session(aws_access_key_id='§', region_name='eu-west-1')",
            '"AccessKeyId": "§",',
            'export AWS_ACCESS_KEY_ID=§',
        ],
    ),
    'aws_secret': (
        lambda r: rs(r, B64, 40),
        [
            'aws_secret_access_key = §',
            'AWS_SECRET_ACCESS_KEY="§"',
            "    aws_secret_access_key='§',",
            '"SecretAccessKey": "§"',
        ],
    ),
    'github': (
        lambda r: rng_choice(r, ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_']) + rs(r, B62, 36),
        [
            'GITHUB_TOKEN=§',
            'headers = {"Authorization": "token §"}',
            'git clone https://§@github.com/acme/infra.git',
            'gh = Github("§")',
        ],
    ),
    'github_pat': (
        lambda r: 'github_pat_' + rs(r, B62, 22) + '_' + rs(r, B62, 59),
        ['export GH_PAT=§', 'token: §'],
    ),
    'slack': (
        lambda r: (
            rng_choice(r, ['xoxb-', 'xoxp-', 'xoxa-'])
            + f'{r.randint(10**11, 10**12)}-{r.randint(10**12, 10**13)}-'
            + rs(r, B62, 24)
        ),
        ['SLACK_BOT_TOKEN=§', 'client = WebClient(token="§")', 'slack: {token: "§"}'],
    ),
    'slack_webhook': (
        lambda r: (
            f'https://hooks.slack.com/services/T{rs(r, string.ascii_uppercase + string.digits, 8)}/'
            f'B{rs(r, string.ascii_uppercase + string.digits, 10)}/{rs(r, B62, 24)}'
        ),
        ['WEBHOOK = "§"', 'requests.post("§", json={"text": msg})'],
    ),
    'stripe': (
        lambda r: rng_choice(r, ['sk_live_', 'rk_live_']) + rs(r, B62, rng_choice(r, [24, 34, 99])),
        ['stripe.api_key = "§"', 'STRIPE_SECRET=§', "Stripe(key='§')"],
    ),
    'google': (
        lambda r: 'AIza' + rs(r, B62 + '-_', 35),
        [
            'GOOGLE_API_KEY = "§"',
            'url = f"https://maps.googleapis.com/maps/api/geocode/json?key=§"',
            '<meta name="google-key" content="§">',
        ],
    ),
    'jwt': (
        gen_jwt,
        [
            'headers["Authorization"] = "Bearer §"',
            'curl -H "Authorization: Bearer §" https://api.acme-corp.com/v1/me',
            'id_token = "§"',
            'cookie: session=§',
        ],
    ),
    'openai': (
        lambda r: (
            rng_choice(r, ['sk-', 'sk-proj-', 'sk-ant-api03-'])
            + rs(r, B62 + rng_choice(r, ['', '-_']), rng_choice(r, [48, 64, 95]))
        ),
        [
            'openai.api_key = "§"',
            'OPENAI_API_KEY=§',
            'client = OpenAI(api_key="§")',
            'anthropic.Anthropic(api_key="§")',
        ],
    ),
    'hf': (
        lambda r: 'hf_' + rs(r, string.ascii_letters, 34),
        ['HF_TOKEN=§', 'login(token="§")', 'huggingface-cli login --token §'],
    ),
    'pem': (
        gen_pem,
        ['KEY = """§"""', '§', 'private_key: |\n  §', '{"type": "service_account", "private_key": "§"}'],
    ),
    'generic': (
        lambda r: gen_password(r),
        [
            'password = "§"',
            'DB_PASSWORD=§',
            '"api_key": "§",',
            'api_key: §',
            'client_secret = \'§\'',
            'SECRET_KEY = "§"',
            'conn = connect(host=h, user="app", password="§")',
            'auth_token: "§"',
            'headers = {"X-Api-Key": "§"}',
            'ACCESS_KEY = "§"',
            'credentials = "§"',
            'private_key_passphrase = "§"',
        ],
    ),
    'generic_hex': (
        lambda r: rs(r, HEX, rng_choice(r, [32, 40, 64])),
        ['api_key = "§"', 'SECRET_KEY=§', 'token: §', '"access_token": "§"'],
    ),
    'generic_uuid': (
        lambda r: '-'.join(rs(r, HEX, n) for n in (8, 4, 4, 4, 12)),
        ['api_key = "§"', 'X_API_KEY=§', '"apiKey": "§"'],
    ),
    'bearer': (
        lambda r: rs(r, B62, rng_choice(r, [32, 40, 64])),
        ['Authorization: Bearer §', "headers={'Authorization': f'Bearer §'}"],
    ),
    'url_password': (
        lambda r: gen_password(r, r.randint(8, 16)).replace('#', 'q').replace('%', 'r').replace('?', 's'),
        [
            'DATABASE_URL=postgres://app:§@db.prod.acme-corp.com:5432/main',
            "engine = create_engine('mysql+pymysql://svc:§@10.2.0.7/shop')",
            'amqp://worker:§@rabbit.internal.acme.io:5672//',
            'redis_url = "redis://:§@cache-01.acme-corp.net:6379/0"',
        ],
    ),
}


def rng_choice(rng, xs):
    return rng.choice(xs)


EMAIL_T = [
    'EMAIL = "§"',
    '# Author: Jane Roe <§>',
    'send_mail(to="§", subject="report")',
    '    "maintainer_email": "§",',
    'Contact: §',
    'Please write to § if the build breaks.',
    'From: "Someone" <§>',
    'git config user.email "§"',
    'mailto:§',
    'users = ["§", "admin"]',
    'logger.info("password reset for %s", "§")',
    '| § | admin | active |',
    'reply-to: §\n',
    '__author__ = "§"',
]
IP_T = [
    'SERVER = "§"',
    'connection from § refused',
    'ssh deploy@§',
    'curl http://§:8080/health',
    'client_ip=§ user_agent="Mozilla/5.0"',
    '§ - - [15/Mar/2024:12:30:45 +0000] "GET / HTTP/1.1" 200 512',
    'ALLOWED_HOSTS = ["§", "localhost"]',
    'The VPN endpoint is § (do not share).',
    'nameserver §',
    '{"ip": "§", "ts": 1710505845}',
    'route add -host § gw 10.0.0.1',
    'Failed password for root from § port 22 ssh2',
]
IP6_T = [
    'SERVER6 = "§"',
    'curl -g "http://[§]:8080/"',
    'AAAA §',
    'listen [§]:443 ssl;',
    'client §  connected',
    '{"ip": "§"}',
]
PHONE_T = [
    'PHONE = "§"',
    'Call me at § tomorrow.',
    'tel: §',
    '    "phone": "§",',
    'Mobile: §',
    'Support hotline § (24/7)',
    'contact = {"name": "Ana", "phone": "§"}',
    '| Jane Roe | § |',
    'fax §',
    'For emergencies ring §.',
]
PHONE_NATIONAL_T = [
    'Phone: §',
    'Tel. §',
    'call § after 5pm',
    'mobile: §',
    '"phone": "§"',
    'Fax: §',
    'telephone §',
]
CARD_T = [
    'card_number = "§"',
    'Card: § exp 12/27',
    '{"pan": "§", "cvv": "123"}',
    'charge(card="§", amount=1999)',
    'I paid with § yesterday.',
    '| § | VISA |',
    'cc=§&exp=1227',
    '{"pan": §, "exp": "12/27"}',
    'card = §',
]


def fill(template, value):
    "The template with its marker replaced, and the span of the value."
    i = template.index(MARK)
    return template[:i] + value + template[i + 1 :], (i, i + len(value))


def positives(rng, n_per):
    items = []

    def add(kind, gen, templates, label, n=n_per):
        for _ in range(n):
            t, (s, e) = fill(rng.choice(templates), gen(rng))
            items.append(dict(text=t, spans=[(s, e, kind)], label=label))

    add('email', gen_email, EMAIL_T, 'email')
    add('ip_address', gen_ipv4, IP_T, 'ipv4')
    add('ip_address', gen_ipv6, IP6_T, 'ipv6', n_per // 2)
    add('phone', gen_phone_intl, PHONE_T + ['§'], 'phone_intl')
    add('phone', gen_phone_nanp, PHONE_T + ['§'], 'phone_nanp', n_per // 2)
    add('phone', gen_phone_national, PHONE_NATIONAL_T, 'phone_national_with_context', n_per // 2)
    add('credit_card', gen_card, CARD_T, 'credit_card')
    for name, (gen, templates) in SECRET_GENS.items():
        for _ in range(max(8, n_per // 5)):
            t = rng.choice(templates)
            v = gen(rng)
            if name == 'pem' and '\n  §' in t:
                v = v.replace('\n', '\n  ')
            if name == 'pem' and t.startswith('{'):
                v = v.replace('\n', '\\n')
            t, (s, e) = fill(t, v)
            items.append(dict(text=t, spans=[(s, e, 'secret')], label=f'secret_{name}'))
    for _ in range(n_per // 2):  # prose with several kinds at once
        e, p, ip = gen_email(rng), gen_phone_intl(rng), gen_ipv4(rng)
        t = f'Hi team, {rng.choice(FIRST).capitalize()} here. Reach me at {e} or on {p}; the staging box is {ip}.'
        items.append(
            dict(
                text=t,
                spans=sorted(
                    [
                        (t.index(e), t.index(e) + len(e), 'email'),
                        (t.index(p), t.index(p) + len(p), 'phone'),
                        (t.index(ip), t.index(ip) + len(ip), 'ip_address'),
                    ]
                ),
                label='mixed_prose',
            )
        )
    return items


# ---------------------------------------------------------------- look-alikes that must stay, with the category they test
def negatives(rng):
    d = lambda n: rs(rng, string.digits, n)
    h = lambda n: rs(rng, HEX, n)
    sv = lambda: f'{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 300)}.{rng.randint(0, 300)}'
    small = lambda: '.'.join(str(rng.randint(0, 31)) for _ in range(4))

    def bad_luhn(n):
        while True:
            x = rng.choice('456') + d(n - 1)
            if not luhn_valid(x):
                return x

    mac = lambda sep: sep.join(h(2) for _ in range(6))
    grouped = lambda x: [x[i : i + 4] for i in range(0, len(x), 4)]

    def card16():
        while True:
            x = gen_card(rng).replace(' ', '').replace('-', '')
            if len(x) == 16:
                return x

    res_local = lambda: rng.choice([f'{rng.choice(FIRST)}.{rng.choice(LAST)}', rng.choice(FIRST), 'noreply'])
    cats = {
        'version': lambda: rng.choice(
            [
                f'__version__ = "{sv()}"',
                f'version {sv()}',
                f'pip install pkg=={sv()}',
                f'requires foo>={sv()}',
                f'v{sv()}',
                f'pkg-{sv()}.tar.gz',
                f'pkg-{sv()}-py3-none-any.whl',
                f'Python 3.{rng.randint(6, 13)}.{rng.randint(0, 20)}',
                f'{small()}',
                f'VERSION = "{small()}"',
                f'release {sv()}rc1',
                f'[assembly: AssemblyVersion("{sv()}")]',
                f'"version": "{sv()}"',
                f'Firmware {sv()}',
                f'see section {rng.randint(1, 9)}.{rng.randint(1, 9)}.{rng.randint(1, 9)}.{rng.randint(10, 99)}',
            ]
        ),
        'oid': lambda: rng.choice(
            [
                f'oid = "1.3.6.1.4.1.{rng.randint(1, 60000)}.{rng.randint(1, 99)}"',
                '2.5.4.3',
                '1.2.840.113549.1.1.11',
                f'OID {rng.randint(0, 2)}.{rng.randint(1, 39)}.{rng.randint(1, 999)}.{rng.randint(1, 999)}.{rng.randint(1, 9)}',
            ]
        ),
        'date_time': lambda: rng.choice(
            [
                f'2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:{rng.randint(0, 59):02d}:45.123456+00:00',
                f'{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.20{rng.randint(10, 30)}',
                f'{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2024',
                f'ts = {rng.randint(1_500_000_000, 1_800_000_000)}',
                f'ts_ms = {rng.randint(1_500_000_000_000, 1_800_000_000_000)}',
                f'ts_ns = {rng.randint(1_500_000_000 * 10**9, 1_800_000_000 * 10**9)}',
                'Mon, 15 Mar 2024 12:30:45 GMT',
                f'{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{d(3)}',
                f'2024 {rng.randint(1, 12):02d} {rng.randint(1, 28):02d}',
                f'elapsed 0:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}',
            ]
        ),
        'digest_uuid_sha': lambda: rng.choice(
            [
                f'sha256 = "{h(64)}"',
                f'md5: {h(32)}',
                f'commit {h(40)}',
                f'git checkout {h(7)}',
                f'run_id = "{h(8)}-{h(4)}-{h(4)}-{h(4)}-{h(12)}"',
                f'uuid.UUID("{h(8)}-{h(4)}-{h(4)}-{h(4)}-{h(12)}")',
                f'etag: "{h(32)}"',
                f'docker pull python@sha256:{h(64)}',
                f'"integrity": "sha512-{rs(rng, B64, 86)}=="',
            ]
        ),
        'float_number': lambda: rng.choice(
            [
                f'x = {rng.random()!r}',
                f'lr = {rng.random() / 1000:.3e}',
                'pi = 3.141592653589793',
                'N_A = 6.02214076e+23',
                f'np.float64({rng.random()!r})',
                f'n = {d(7)}',
                f'N = 1_000_000',
                'SECONDS_PER_DAY = 86400',
                f'total = {rng.randint(1000, 99999):,}',
                f'size = {rng.randint(10**6, 10**9)}',
                'eps = 1e+10',
            ]
        ),
        'range': lambda: rng.choice(
            [
                f'range({rng.randint(0, 500)}, {rng.randint(500, 5000)})',
                f'ports 1024-65535',
                f'pages {rng.randint(1, 300)}-{rng.randint(300, 900)}',
                f'x[{rng.randint(0, 99)}:{rng.randint(100, 999)}]',
                f'{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(10, 99)}',
                f'ISBN 978-{rng.randint(0, 9)}-{d(3)}-{d(5)}-{rng.randint(0, 9)}',
                f'zip 94103-{d(4)}',
            ]
        ),
        'decorator_at': lambda: rng.choice(
            [
                '@property\ndef name(self): return self._name',
                '@functools.lru_cache(maxsize=128)',
                '@app.route("/api/v1/users")',
                'y = x@self.weight.T',
                'out = A@B',
                'h = x@W.to(device)',
                'icon@2x.png',
                'npm i left-pad@1.3.0',
                '@media (max-width: 600px)',
                f'@{rng.choice(FIRST)} thanks!',
                '@pytest.mark.parametrize("n", [1, 2])',
                'z = q@k.transpose(-2, -1)',
            ]
        ),
        'ssh_login': lambda: rng.choice(
            [
                f'ssh {rng.choice(FIRST)}@build-{rng.randint(1, 99):02d}',
                'ssh user@host',
                f'git clone git@github.com:{rng.choice(LAST)}/repo.git',
                'scp file.txt admin@server:/tmp/',
                f'https://{rng.choice(FIRST)}@gitlab.com/group/project.git',
                'git@github.com',
                'rsync -av deploy@staging:/srv/app .',
                'ssh -i key.pem ubuntu@ec2-host',
            ]
        ),
        'port': lambda: rng.choice(
            [
                f'localhost:{rng.randint(1024, 65535)}',
                f'0.0.0.0:{rng.randint(1024, 9999)}',
                f'127.0.0.1:{rng.randint(1024, 9999)}',
                f'port={rng.randint(1, 65535)}',
                f'EXPOSE {rng.randint(1024, 9999)}',
                f'":{rng.randint(1, 65535)}"',
            ]
        ),
        'long_number': lambda: rng.choice(
            [
                f'N = {bad_luhn(16)}',
                'ref = "' + ' '.join(grouped(bad_luhn(16))) + '"',
                'MAX = 9223372036854775807',
                'U64 = 18446744073709551615',
                'x = 4503599627370496',
                'TWO53 = 9007199254740992',
                f'order_id = {bad_luhn(15)}',
                f'id = {d(18)}',
                '"' + '-'.join(grouped(bad_luhn(16))) + '"',
            ]
        ),
        'numeric_literal': lambda: rng.choice(
            [
                f'rng = np.random.default_rng({card16()})',
                f'g = {card16()}*t**16 + {d(9)}*t**14',
                f'x = y + {card16()}',
                f'seed = hash_mix({card16()}, 7)',
                f'idx = [{card16()} % n]',
            ]
        ),
        'signed_int': lambda: rng.choice(
            [
                '-2147483648  +2147483647',
                '+2147483392',
                '{"min": -9007199254740991, "max": +9007199254740991}',
                f'delta = +{d(10)}',
                f'assert f(x) == +{rng.choice(["281474976710656", "4294967296", "1099511627776"])}',
            ]
        ),
        'short_hex_id': lambda: rng.choice(
            [
                f'publicKeyToken="{h(16)}"',
                f'token = "{h(16)}"',
                f'secret_id = "{h(12)}"',
                f'cache_token: {h(8)}',
            ]
        ),
        'test_card': lambda: rng.choice(
            [
                '4111 1111 1111 1111',
                '4242424242424242',
                '5555 5555 5555 4444',
                '378282246310005',
                '6011111111111117',
                '4012888888881881',
                '5105105105105100',
            ]
        ),
        'ipv6_like': lambda: rng.choice(
            [
                'a[::2]',
                'x[1::2]',
                'arr[::-1]',
                'np.s_[::3]',
                'std::vector<std::string>',
                'Foo::Bar::baz()',
                'dead::beef',
                'b[2000::3]',
                'data[10::5]',
                'ns::detail::impl',
                'case 0xdead::',
                'fe80::1%eth0',
                '::1',
                '::',
                'fd00::1',
                f'2001:db8::{h(4)}',
                f'2001:db8:{h(4)}::{h(3)}',
                'ff02::1',
                '::ffff:10.0.0.1',
            ]
        ),
        'mac_time': lambda: rng.choice(
            [
                f'mac = "{mac(":")}"',
                f'{mac("-").upper()}',
                f'{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}',
                f'ether {mac(":")}',
                f'2024:{rng.randint(1, 12):02d}:{rng.randint(1, 28):02d} 10:00:00',
            ]
        ),
        'hash_constant': lambda: rng.choice(
            [
                'GOLDEN = 0x9E3779B97F4A7C15',
                'FNV_PRIME = 1099511628211',
                'FNV_OFFSET = 14695981039346656037',
                f'SEED = 0x{h(16)}',
                'CRC = 0xEDB88320',
                f'MAGIC = 0x{h(8).upper()}',
                'h ^= 0xcbf29ce484222325',
            ]
        ),
        'reserved_email': lambda: (
            f'{res_local()}@'
            + rng.choice(
                [
                    'example.com',
                    'example.org',
                    'mail.example.net',
                    'shop.test',
                    'x.invalid',
                    'dev.localhost',
                    'corp.example',
                ]
            )
        ),
        'reserved_ip': lambda: rng.choice(
            [
                '127.0.0.1',
                '0.0.0.0',
                f'10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}',
                f'192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}',
                f'172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}',
                f'192.0.2.{rng.randint(1, 254)}',
                f'198.51.100.{rng.randint(1, 254)}',
                f'203.0.113.{rng.randint(1, 254)}',
                '255.255.255.0',
                '224.0.0.251',
                f'169.254.{rng.randint(0, 255)}.{rng.randint(1, 254)}',
                f'100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.7',
                '8.8.8.8',
                '1.1.1.1',
                '9.9.9.9',
                f'93.184.{rng.randint(32, 255)}.0/24',
            ]
        ),
        'reserved_phone': lambda: rng.choice(
            [
                f'({rng.randint(200, 999)}) 555-01{d(2)}',
                f'+1 {rng.randint(200, 999)} 555 01{d(2)}',
                f'{rng.randint(200, 999)}-555-01{d(2)}',
                '123-456-7890',
                '000-000-0000',
                '+1 000 000 0000',
                '+0 123 456 789',
                '+4294967296',
                'format(n, "+b") == "+10011010010"',
            ]
        ),
        'digits_no_phone': lambda: rng.choice(
            [
                'offset = +0530',
                'x = 1e+10',
                '+1.5',
                'total +100.000.000',
                '00 01 02 03 04 05 06 07 08 09 0a 0b',
                '[ 0  1  2  3  4  5  6  7]',
                f'({rng.randint(2000, 2030)}, {rng.randint(1, 12)}, {rng.randint(1, 28)})',
                '1,000,000',
                f'array([{rng.randint(200, 999)}, {rng.randint(200, 999)}, {d(4)}])',
                f'{rng.randint(200, 999)} {rng.randint(200, 999)} {d(4)}',
                f'0{rng.randint(10, 99)} {d(4)} {d(4)}',
                f'[[{rng.randint(200, 999)} {rng.randint(200, 999)} {d(4)}]]',
            ]
        ),
        'placeholder_secret': lambda: rng.choice(
            [
                'password = "changeme"',
                'api_key = "<your-api-key>"',
                'token = "${GITHUB_TOKEN}"',
                'secret = ""',
                'API_KEY = "xxxxxxxxxxxxxxxxxxxxxxxx"',
                'password = "hunter2"',
                'AKIAIOSFODNN7EXAMPLE',
                'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
                'token = tokenizer.eos_token',
                'password = os.environ["DB_PASSWORD"]',
                'secret_key = settings.SECRET_KEY',
                'pad_token = "<|endoftext|>"',
                'token_type = "access_token"',
                'TOKEN_URL = "https://oauth2.googleapis.com/token"',
                'PEM_HEADER = "-----BEGIN PRIVATE KEY-----"\nPEM_FOOTER = "-----END PRIVATE KEY-----"',
                'ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
                'import sklearn  # pip install scikit-learn, not sk-learn',
                'api_key = get_api_key(config.path)',
                'password_hash = make_password(raw_password)',
                'secret_sauce = "the-recipe-for-sauce-v2"',
                'token_pattern = r"(?u)\\b\\w\\w+\\b"',
                'Authorization: Bearer {token}',
                'Authorization: Bearer <token>',
                'http://user:password@proxy.acme-corp.com',
                'postgres://postgres:postgres@localhost/db',
                'https://{user}:{password}@host/',
                'SECRET_KEY = "django-insecure-dev-only-change-me"',
                'access_key = None',
                'api_key: str = "YOUR_API_KEY"',
                'token = "%(token)s"',
                'password=${DB_PASSWORD}',
                f'token_ids = tokenizer.encode(text)[:{rng.randint(8, 512)}]',
                'sk_test_4eC39HqLyjWDarjtT1zdp7dc',
                'stripe.api_key = "sk_test_BQokikJOvBiI2HlWgH4olfQ2"',
                '"sk-" + key_suffix',
                'xoxb-your-bot-token-here',
                f'tokens = [{rng.randint(1, 50000)}, {rng.randint(1, 50000)}]',
                'hf_hub_download(repo_id="gpt2", filename="config.json")',
                'auth = (user, password)',
            ]
        ),
    }
    items = []
    for cat, g in cats.items():
        for _ in range(24):
            items.append(dict(text=g(), spans=[], label=f'lookalike_{cat}'))
    return items


# ---------------------------------------------------------------- knowingly out of scope: planted PII the policy does not catch
def known_limits(rng):
    items = []
    for _ in range(10):
        for t, v, k in [
            ('§', gen_phone_national(rng), 'phone'),
            ('number §', f'{_nanp(rng)[0]}{_nanp(rng)[1]}{_nanp(rng)[2]}', 'phone'),
            ('password = "§"', rng.choice(['Summer2024!', 'hunter2', 'P@ssw0rd1', 'letmein99']), 'secret'),
            ('§', f'{rng.choice(FIRST)}@{rng.choice(LAST)}.photography', 'email'),
            ('§', f'2001::{rs(rng, HEX, 4)}', 'ip_address'),
        ]:
            t2, (s, e) = fill(t, v)
            items.append(dict(text=t2, spans=[(s, e, k)], label=f'limit_{k}'))
    return items


# ---------------------------------------------------------------- documents and scoring
FILLER = [
    'import os, sys',
    'def main(argv=None):',
    '    """Entry point."""',
    '    cfg = load_config(path)',
    '    for i in range(10):',
    '        total += i * 2',
    'class Worker(object):',
    '    def __init__(self, n=4): self.n = n',
    '# TODO: handle retries',
    'if __name__ == "__main__":',
    '    main()',
    '',
    'The results below were collected on Tuesday.',
    '    return {"ok": True}',
]


def build_docs(items, rng, per_doc=6):
    "Join items into multi-line documents with neutral filler; gold spans move with them."
    rng.shuffle(items)
    docs = []
    for i in range(0, len(items), per_doc):
        parts, spans, where, pos = [], [], [], 0
        for it in items[i : i + per_doc]:
            for _ in range(rng.randint(0, 2)):
                f = rng.choice(FILLER) + '\n'
                parts.append(f)
                pos += len(f)
            spans += [(s + pos, e + pos, k, it['label']) for s, e, k in it['spans']]
            where.append((pos, pos + len(it['text']), it['label']))
            parts.append(it['text'] + '\n')
            pos += len(it['text']) + 1
        docs.append(dict(text=''.join(parts), gold=spans, where=where))
    return docs


def score(docs):
    tp, fp, fn = Counter(), Counter(), Counter()
    by_label = defaultdict(Counter)
    errors = []
    for d in docs:
        pred = set(find_pii(d['text']))
        gold = {(s, e, k): lab for s, e, k, lab in d['gold']}
        for g, lab in gold.items():
            hit = g in pred
            (tp if hit else fn)[g[2]] += 1
            by_label[lab]['found' if hit else 'missed'] += 1
            if not hit:
                errors.append(
                    dict(
                        type='missed',
                        kind=g[2],
                        label=lab,
                        value=d['text'][g[0] : g[1]][:120],
                        got=[(k, d['text'][s:e][:80]) for s, e, k in pred if s < g[1] and g[0] < e],
                    )
                )
        for p in pred - set(gold):
            fp[p[2]] += 1
            line = d['text'].rfind('\n', 0, p[0]) + 1
            lab = next((l for s, e, l in d['where'] if s <= p[0] < e), 'filler')
            by_label[lab][f'false_positive_{p[2]}'] += 1
            errors.append(
                dict(
                    type='false_positive',
                    kind=p[2],
                    label=lab,
                    value=d['text'][p[0] : p[1]][:120],
                    line=d['text'][line : d['text'].find('\n', p[1])][:160],
                )
            )

    def pr(k=None):
        t = sum(tp.values()) if k is None else tp[k]
        f = sum(fp.values()) if k is None else fp[k]
        n = sum(fn.values()) if k is None else fn[k]
        return dict(
            gold=t + n,
            predicted=t + f,
            tp=t,
            fp=f,
            fn=n,
            recall=round(t / (t + n), 4) if t + n else None,
            precision=round(t / (t + f), 4) if t + f else None,
        )

    return dict(
        overall=pr(),
        per_kind={k: pr(k) for k in PII_KINDS},
        per_label={k: dict(v) for k, v in sorted(by_label.items())},
    ), errors


def corpus_pass(root, n_files, seed, max_listed):
    "Redact a seeded sample of the .py files under `root`; counts per kind, speed, and every finding for judging by hand."
    root = Path(root)
    files = sorted(p for p in root.rglob('*.py') if 'site-packages' not in p.relative_to(root).parts)
    files = sorted(random.Random(seed).sample(files, min(n_files, len(files))))
    texts = []
    for p in files:
        try:
            texts.append((str(p.relative_to(root)), p.read_text(encoding='utf-8')))
        except (UnicodeDecodeError, OSError):
            pass
    nbytes = sum(len(t.encode()) for _, t in texts)
    t0 = time.perf_counter()
    results = [(name, t, redact_pii(t)) for name, t in texts]
    wall = time.perf_counter() - t0
    counts, files_with, found = Counter(), Counter(), []
    for name, t, (_, c) in results:
        counts.update(c)
        files_with.update(c.keys())
        if c:
            for s, e, k in find_pii(t):
                # the saved findings never carry the value itself: a results file must not become a list of PII
                found.append(
                    dict(
                        file=name,
                        kind=k,
                        context=redact_pii(t[max(0, s - 50) : s] + PLACEHOLDERS[k] + t[e : e + 30])[
                            0
                        ].replace('\n', '⏎'),
                    )
                )
    return dict(
        files=len(texts),
        mb=round(nbytes / 1e6, 2),
        seconds=round(wall, 2),
        mb_per_s=round(nbytes / 1e6 / wall, 2),
        redactions=dict(counts),
        files_with_redactions=dict(files_with),
        findings=found[:max_listed],
        findings_total=len(found),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--per-kind', type=int, default=80, help='planted items per kind and format')
    ap.add_argument('--stdlib-files', type=int, default=300)
    ap.add_argument(
        '--site-packages',
        type=int,
        default=0,
        help='also sample this many .py files of the installed packages',
    )
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'pii.json'))
    a = ap.parse_args()
    t_start = time.perf_counter()
    rng = random.Random(a.seed)
    pos, neg, lim = positives(rng, a.per_kind), negatives(rng), known_limits(rng)
    docs = build_docs(pos + neg, rng)
    text_mb = sum(len(d['text'].encode()) for d in docs) / 1e6
    t0 = time.perf_counter()
    [redact_pii(d['text']) for d in docs]
    labelled_s = time.perf_counter() - t0
    main_score, errors = score(docs)
    lim_score, lim_errors = score(build_docs(lim, rng, per_doc=1))
    std = corpus_pass(sysconfig.get_paths()['stdlib'], a.stdlib_files, a.seed, max_listed=400)
    sp = (
        corpus_pass(sysconfig.get_paths()['purelib'], a.site_packages, a.seed, max_listed=400)
        if a.site_packages
        else None
    )
    res = dict(
        labelled=dict(
            documents=len(docs),
            planted_items=len(pos),
            lookalike_items=len(neg),
            gold_spans=main_score['overall']['gold'],
            mb=round(text_mb, 3),
            **main_score,
            mb_per_s=round(text_mb / labelled_s, 2),
            errors=errors[:60],
        ),
        targets=dict(
            recall=0.99,
            precision=0.95,
            met=main_score['overall']['recall'] >= 0.99 and main_score['overall']['precision'] >= 0.95,
        ),
        known_limits=dict(
            note='planted PII the policy knowingly misses; not in the figures above', **lim_score['per_label']
        ),
        stdlib=std,
        **(dict(site_packages=sp) if sp else {}),
        seed=a.seed,
        wall_s=round(time.perf_counter() - t_start, 1),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version()),
    )
    out = json.dumps(res, indent=1, ensure_ascii=False)
    summary = {
        k: ({k2: v2 for k2, v2 in v.items() if k2 != 'findings'} if k in ('stdlib', 'site_packages') else v)
        for k, v in res.items()
    }
    summary['labelled'] = {k: v for k, v in res['labelled'].items() if k != 'errors'} | dict(
        errors=errors[:15]
    )
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(out + '\n')


if __name__ == '__main__':
    main()
