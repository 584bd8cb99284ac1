"""Strict configuration (issue 9, point 8): what `load_settings(path, environ)` accepts and refuses.

Every table refuses keys it does not know, modes are enums checked at load, routes are built by keyword,
and the environment is a mapping handed to the loader (never `os.environ` read below the CLI).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import gateway.config as config_module
from gateway.config import Route, SessionSettings, Settings, load_settings
from gateway.config_schema import CdnScope, Delivery, DeltaUpdates, SameSite
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEY = "k1:" + "A" * 43
ORIGIN = "http://127.0.0.1:9/"
ENV = {"GATEWAY_KEYS": KEY, "GATEWAY_ORIGIN": ORIGIN}
AKAMAI_KEY = "00112233445566778899aabbccddeeff"


def load(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(body)
    return load_settings(path, ENV if environ is None else environ)


def refusal(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, body, environ)
    return str(raised.value)


# --- every table refuses unknown keys ----------------------------------------------------------------

ROUTE = f'mount = "/vod/"\norigin = "{ORIGIN}vod/"\n'


@pytest.mark.parametrize(
    ("body", "key", "table", "meant"),
    [
        ('[gateway]\ntoken_parm = "tok"\n', "token_parm", "[gateway]", "token_param"),
        ('[keys]\nretierd = ["k0"]\n', "retierd", "[keys]", "retired"),
        ("[origin]\nread_timeout = 3\n", "read_timeout", "[origin]", "read_timeout_seconds"),
        ("[sessions]\nmedia_tll_seconds = 60\n", "media_tll_seconds", "[sessions]", "media_ttl_seconds"),
        ('[cors]\nallowed_origin = ["https://player.example"]\n', "allowed_origin", "[cors]", "allowed_origins"),
        ('[revocations]\nredis = "redis://127.0.0.1:6379/0"\n', "redis", "[revocations]", "redis_url"),
        (f'[[routes]]\n{ROUTE}delivry = "cookie"\n', "delivry", "[[routes]] #1", "delivery"),
        ('[[users]]\ncredential = "c"\nid = "u"\nplann = "paid"\n', "plann", "[[users]] #1", "plan"),
        ('[[titles]]\nprefix = "/vod/t/"\nallowed_country = ["NL"]\n', "allowed_country", "[[titles]] #1", "name"),
        ("[sesions]\ntoken_ttl_seconds = 60\n", "sesions", "the top level of the config", "sessions"),
        ("token_param = 'tok'\n", "token_param", "the top level of the config", "gateway"),
        (f'[dialects.akamai]\nkey = "{AKAMAI_KEY}"\ntoken_nme = "x"\n', "token_nme", "[dialects.akamai]", "token_name"),
    ],
)
def test_an_unknown_key_fails_naming_the_key_and_its_table(
    tmp_path: Path, body: str, key: str, table: str, meant: str
) -> None:
    message = refusal(tmp_path, body)
    assert message.startswith(f"unknown key {key!r} in {table}; known: "), message
    assert meant in message.split("known: ", 1)[1].split(", ")


def test_the_route_with_the_typo_is_named(tmp_path: Path) -> None:
    body = f'[[routes]]\n{ROUTE}\n[[routes]]\nmount = "/live/"\norigin = "{ORIGIN}live/"\nforward_qery = []\n'
    assert refusal(tmp_path, body).startswith("unknown key 'forward_qery' in [[routes]] #2; known: ")


def test_an_unknown_key_never_echoes_its_value(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[origin]\nauth_secrett = "SECRET-VALUE-0123456789"\n')
    assert "'auth_secrett' in [origin]" in message and "SECRET-VALUE" not in message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sessions = 5\n", "sessions must be a table ([sessions])"),
        ('[routes]\nmount = "/"\n', "routes must be an array of tables ([[routes]])"),
        ("users = [1]\n", "users must be an array of tables ([[users]])"),
        ('[[routes]]\nmount = "/vod/"\n', "[[routes]] #1 needs origin"),
        ("[[routes]]\nmount = 3\norigin = 'http://127.0.0.1:9/'\n", "routes.mount must be a string"),
    ],
)
def test_tables_have_the_shape_the_file_format_says(tmp_path: Path, body: str, message: str) -> None:
    assert message in refusal(tmp_path, body)


def test_the_documented_example_files_load_under_the_strict_rules(tmp_path: Path) -> None:
    """README "Configuration" and gateway/config.py show a file with every table: both must load as shown."""
    readme = (ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1]
    examples = {
        "README": readme.split("```toml\n", 1)[1].split("```", 1)[0],
        "config.py": str(config_module.__doc__).split("```toml\n", 1)[1].split("```", 1)[0],
    }
    for name, example in examples.items():
        settings = load(tmp_path, example, {"GATEWAY_KEYS": KEY})  # the variable wins over the example's ring
        assert settings.routes, name


# --- modes are enums ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            f'[[routes]]\n{ROUTE}delivery = "cookies"\n',
            "routes.delivery must be one of query, cookie, hybrid, path, queryparam, got 'cookies'",
        ),
        ('[gateway]\ndelta_updates = "ful"\n', "gateway.delta_updates must be one of pass, full, got 'ful'"),
        (f'[[routes]]\n{ROUTE}cdn_scope = "keys"\n', "routes.cdn_scope must be one of segments, media, got 'keys'"),
        (
            '[sessions]\ncookie_same_site = "lax"\n',
            "sessions.cookie_same_site must be one of Lax, Strict, None, got 'lax'",
        ),
        (
            f"[[routes]]\n{ROUTE}delivery = 1\n",
            "routes.delivery must be one of query, cookie, hybrid, path, queryparam, got 1",
        ),
    ],
)
def test_a_mode_outside_its_enum_fails_naming_the_setting_and_the_choices(
    tmp_path: Path, body: str, message: str
) -> None:
    assert refusal(tmp_path, body) == message


def test_modes_load_as_enum_members(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        f'[gateway]\ndelta_updates = "full"\n[sessions]\ncookie_same_site = "None"\n'
        f'[[routes]]\n{ROUTE}delivery = "hybrid"\ncdn_scope = "media"\n',
    )
    route = next(r for r in settings.routes if r.mount == "/vod/")
    assert route.delivery is Delivery.HYBRID and route.cdn_scope is CdnScope.MEDIA
    assert settings.delta_updates is DeltaUpdates.FULL
    assert settings.sessions.cookie_same_site is SameSite.NONE
    assert next(r for r in settings.routes if r.mount == "/").delivery is Delivery.QUERY  # the default


def test_objects_built_in_code_get_members_and_the_same_checks() -> None:
    assert Route(mount="/", origin=ORIGIN, delivery="path").delivery is Delivery.PATH  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"routes\.delivery must be one of query, cookie, hybrid, path"):
        Route(mount="/", origin=ORIGIN, delivery="paths")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"sessions\.cookie_same_site must be one of Lax, Strict, None"):
        SessionSettings(cookie_same_site="none")  # type: ignore[arg-type]


# --- routes are built by keyword ---------------------------------------------------------------------


def test_a_route_cannot_be_built_positionally() -> None:
    with pytest.raises(TypeError):
        Route("/vod/", ORIGIN)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Route("/vod/", ORIGIN, Delivery.COOKIE)  # type: ignore[call-arg]
    assert Route(mount="/vod/", origin=ORIGIN, delivery=Delivery.COOKIE).delivery is Delivery.COOKIE


# --- the environment is a mapping given to the loader ------------------------------------------------


def test_load_settings_is_given_its_environment() -> None:
    assert inspect.signature(load_settings).parameters["environ"].default is inspect.Parameter.empty
    settings = load_settings(None, {"GATEWAY_KEYS": KEY, "GATEWAY_ORIGIN": ORIGIN, "GATEWAY_TOKEN_PARAM": "tok"})
    assert settings.token_param == "tok" and settings.routes[0].origin == ORIGIN


def test_the_process_environment_is_not_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set in os.environ, absent from the mapping: not seen (the mapping is the whole environment)."""
    monkeypatch.setenv("GATEWAY_ORIGIN", ORIGIN)
    monkeypatch.setenv("AKAMAI_KEY", AKAMAI_KEY)
    with pytest.raises(ConfigError, match="no origin"):
        load_settings(None, {"GATEWAY_KEYS": KEY})


def test_dialect_env_references_are_resolved_from_the_given_mapping(tmp_path: Path) -> None:
    body = '[dialects.akamai]\nkey_env = "AKAMAI_KEY"\n'
    settings = load(tmp_path, body, {**ENV, "AKAMAI_KEY": AKAMAI_KEY})
    assert settings.dialects["akamai"].name == "akamai"
    message = refusal(tmp_path, body)  # ENV has no AKAMAI_KEY (whatever the process has)
    assert message == "[dialects.akamai] key_env: environment variable AKAMAI_KEY is not set or empty"


def test_a_bad_secret_from_the_environment_is_never_echoed(tmp_path: Path) -> None:
    secret = "s3cr3t*not*hex*or*base64url*0123456789"
    cases = [
        ('[dialects.akamai]\nkey_env = "AKAMAI_KEY"\n', {**ENV, "AKAMAI_KEY": secret}),
        ("", {**ENV, "GATEWAY_ORIGIN_SECRET": secret}),
        ("", {**ENV, "GATEWAY_KEYS": "k1:" + secret}),
    ]
    for body, environ in cases:
        message = refusal(tmp_path, body, environ)
        assert "s3cr3t" not in message, message


PROCESS_ENVIRONMENT = {"environ", "environb", "getenv", "getenvb"}


def process_environment_reads(source: Path) -> int:
    """How often `source` touches the process environment: `os.environ`, `os.getenv`, `from os import ...`."""
    count = 0
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Attribute) and node.attr in PROCESS_ENVIRONMENT:
            count += isinstance(node.value, ast.Name) and node.value.id == "os"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            count += sum(alias.name in PROCESS_ENVIRONMENT for alias in node.names)
    return count


def test_the_environment_is_read_only_at_the_command_line() -> None:
    """The process environment is touched in gateway/ only where the CLI hands it to the loaders (cli.py
    `_environment`), where bench builds a child process's environment, and where `serve --workers` hands its
    arguments and that environment to its worker processes (workers.py `_process_environment`)."""
    found = {
        source.relative_to(ROOT).as_posix(): reads
        for source in sorted((ROOT / "gateway").rglob("*.py"))
        if (reads := process_environment_reads(source))
    }
    assert found == {"gateway/cli.py": 1, "gateway/dev/bench.py": 1, "gateway/workers.py": 1}


# --- every documented GATEWAY_* variable is read -----------------------------------------------------

# A value for each variable that changes the settings loaded from BASE_FILE with no environment.
SAMPLES = {
    "GATEWAY_KEYS": "k2:" + "B" * 42 + "A",
    "GATEWAY_ORIGIN": "http://127.0.0.1:7/",
    "GATEWAY_TOKEN_PARAM": "tok",
    "GATEWAY_LEEWAY_SECONDS": "9",
    "GATEWAY_MAX_MANIFEST_BYTES": "1024",
    "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8",
    "GATEWAY_CORS_ALLOWED_ORIGINS": "https://player.example",
    "GATEWAY_ORIGIN_SECRET": "C" * 42 + "A",
    "GATEWAY_ENTITLEMENTS_SECRET": "D" * 42 + "A",
    "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
    "GATEWAY_LOG_FORMAT": "json",
}
BASE_FILE = f'[keys]\nring = "{KEY}"\n\n[[routes]]\nmount = "/"\norigin = "{ORIGIN}"\n'


def documented_variables() -> set[str]:
    """The variables README "Configuration" lists in its first paragraph."""
    section = (ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1]
    return set(re.findall(r"`(GATEWAY_[A-Z_]+)`", section.split("```", 1)[0]))


def test_the_readme_lists_every_variable_it_mentions_and_the_loader_reads() -> None:
    listed = documented_variables()
    mentioned = set(re.findall(r"GATEWAY_[A-Z]+(?:_[A-Z]+)*", (ROOT / "README.md").read_text()))
    read = set(re.findall(r'"(GATEWAY_[A-Z_]+)"', (ROOT / "gateway" / "config.py").read_text()))
    assert mentioned <= listed, f"mentioned in README but not listed under Configuration: {mentioned - listed}"
    assert read <= listed, f"read by gateway/config.py but not documented: {read - listed}"
    assert listed <= set(SAMPLES), f"add a sample value for {listed - set(SAMPLES)}"


@pytest.mark.parametrize("variable", sorted(documented_variables()))
def test_each_documented_variable_has_an_effect(tmp_path: Path, variable: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE_FILE)
    assert load_settings(path, {variable: SAMPLES[variable]}) != load_settings(path, {}), variable


# --- origin pools --------------------------------------------------------------------------------------------


def test_origin_pools_load_from_the_file_and_nonsense_is_refused(tmp_path: Path) -> None:
    body = f"[[routes]]\n{ROUTE}[origin]\nsegment_connections = 500\nmanifest_connections = 8\n"
    settings = load(tmp_path, body + "pool_wait_seconds = 0.5\nmax_streams_per_client = 0\n")
    assert (settings.origin.segment_connections, settings.origin.manifest_connections) == (500, 8)
    assert settings.origin.pool_wait_seconds == 0.5 and settings.origin.max_streams_per_client == 0
    assert "segment_connections must be >= 1" in refusal(
        tmp_path, f"[[routes]]\n{ROUTE}[origin]\nsegment_connections = 0\n"
    )
    assert "pool_wait_seconds must be positive" in refusal(
        tmp_path, f"[[routes]]\n{ROUTE}[origin]\npool_wait_seconds = 0\n"
    )
    assert "max_streams_per_client must not be negative" in refusal(
        tmp_path, f"[[routes]]\n{ROUTE}[origin]\nmax_streams_per_client = -1\n"
    )


# --- queryparam delivery ---------------------------------------------------------------------------------


def test_queryparam_routes_load_with_the_request_param_option(tmp_path: Path) -> None:
    settings = load(tmp_path, f'[[routes]]\n{ROUTE}delivery = "queryparam"\nrequest_param = true\n')
    route = next(r for r in settings.routes if r.mount == "/vod/")
    assert route.delivery is Delivery.QUERYPARAM and route.request_param is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f'[[routes]]\n{ROUTE}delivery = "queryparam"\nrequest_param = "yes"\n', "request_param must be true or false"),
        (f"[[routes]]\n{ROUTE}request_param = true\n", 'only delivery = "queryparam" uses'),
        (
            f'[dialects.akamai]\nkey = "{AKAMAI_KEY}"\n[[routes]]\n{ROUTE}delivery = "queryparam"\ncdn = "akamai"\n'
            'cdn_base_url = "https://cdn.example/"\n',
            "takes no cdn or edge",
        ),
        (
            f'[dialects.akamai]\nkey = "{AKAMAI_KEY}"\n[[routes]]\n{ROUTE}delivery = "queryparam"\nedge = "akamai"\n',
            "takes no cdn or edge",
        ),
        (
            f'[gateway]\ntoken_param = "tökén"\n[[routes]]\n{ROUTE}delivery = "queryparam"\n',
            "cannot name an HLS variable",
        ),
    ],
)
def test_queryparam_refusals(tmp_path: Path, body: str, message: str) -> None:
    assert message in refusal(tmp_path, body)
