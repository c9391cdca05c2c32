"""A bad config file is refused with one message naming the key, exit code 2, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from haltless.agent.command import EXIT_BAD_CONFIG, run_command
from haltless.agent.config import load_config
from tests.agent.conftest import run_agent_once
from tests.agent.industrial import make_certificate

VALID = 'server_url = "http://127.0.0.1:8000"\napi_key = "hlk_test"\n'
MQTT = '[[sources]]\ntype = "mqtt"\n[[sources.subscriptions]]\n'
MACHINE = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
MODBUS = f'[[sources]]\ntype = "modbus"\nhost = "plc"\n[[sources.registers]]\nmachine = "{MACHINE}"\nmetric = "m"\n'
OPCUA = '[[sources]]\ntype = "opcua"\nendpoint = "opc.tcp://plc:4840"\n'
NODE = f'[[sources.nodes]]\nmachine = "{MACHINE}"\nmetric = "m"\n'
SECURED = OPCUA + 'security_policy = "Basic256Sha256"\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (VALID + "[uplink]\nbatchsize = 5\n", "uplink.batchsize: unknown key"),
        (VALID + "[uplink]\nbatch_size = 20000\n", "uplink.batch_size: Input should be less than or equal to 10000"),
        (VALID + "[buffer]\nmax_rows = 0\n", "buffer.max_rows: Input should be greater than or equal to 1"),
        (
            VALID + '[buffer]\noverflow = "drop_random"\n',
            "buffer.overflow: Input should be 'drop_oldest' or 'drop_newest'",
        ),
        ('server_url = "ftp://plant"\napi_key = "k"\n', "server_url: must start with http:// or https://"),
        ('server_url = "http://plant"\n', "set exactly one of api_key or api_key_env"),
        (VALID + '[machines]\npress = "not-a-uuid"\n', "machines: 'press' must map to a machine UUID"),
        (VALID + '[[sources]]\ntype = "kafka"\n', "sources[0]: Input tag 'kafka'"),
        (VALID + MQTT + 'topic = "plant/{machine}"\n', "sources[0].subscriptions[0]: metric uses {metric}"),
        (VALID + MQTT + 'topic = "plant/#/{machine}/{metric}"\n', "'#' is only allowed as the last level"),
        (VALID + MQTT + 'topic = "plant/m-{machine}/{metric}"\n', "level 'm-{machine}' mixes text with a wildcard"),
        (VALID + '[[sources]]\ntype = "csv"\n', "sources[0].path: Field required"),
        (VALID + '[[sources]]\ntype = "csv"\npath = "a.csv"\n[[sources]]\ntype = "csv"\npath = "b.csv"\n', "unique"),
        (
            VALID + MODBUS + 'table = "holdings"\naddress = 1\n',
            "sources[0].registers[0].table: Input should be 'holding'",
        ),
        (
            VALID + MODBUS + "address = 70000\n",
            "sources[0].registers[0].address: Input should be less than or equal to 65535",
        ),
        (
            VALID + MODBUS + 'type = "float64"\naddress = 65533\n',
            "sources[0].registers[0].address: 65533 + 4 registers of float64 ends past the last address 65535",
        ),
        (VALID + MODBUS + 'type = "float16"\naddress = 1\n', "sources[0].registers[0].type: Input should be 'bool'"),
        (
            VALID + MODBUS + 'table = "coil"\ntype = "float32"\naddress = 1\n',
            "sources[0].registers[0].type: 'float32' does not fit table 'coil' (use bool)",
        ),
        (
            VALID + MODBUS + 'type = "bool"\naddress = 1\n',
            "sources[0].registers[0].type: 'bool' does not fit table 'holding' (use int16, uint16",
        ),
        (VALID + MODBUS.replace(MACHINE, "press-9") + "address = 1\n", "sources[0].registers[0].machine: 'press-9'"),
        (
            VALID + MODBUS.replace('host = "plc"\n', 'host = "plc"\nunit_id = 256\n') + "address = 1\n",
            "sources[0].unit_id: Input should be less than or equal to 255",
        ),
        (VALID + OPCUA + NODE, "sources[0].nodes[0]: set exactly one of node_id or browse_path"),
        (
            VALID + OPCUA + NODE + 'node_id = "ns=2;x=1"\n',
            "sources[0].nodes[0].node_id: 'ns=2;x=1' is not an OPC UA node id",
        ),
        (
            VALID + OPCUA + NODE + 'browse_path = "<bad"\n',
            "sources[0].nodes[0].browse_path: '<bad' is not a browse path",
        ),
        (VALID + OPCUA + NODE + 'node_id = "i=1"\nbrowse_path = "/0:Objects"\n', "set exactly one of node_id"),
        (
            VALID + OPCUA.replace("opc.tcp", "http") + NODE + 'node_id = "i=1"\n',
            "sources[0].endpoint: must start with opc",
        ),
        (
            VALID + SECURED + NODE + 'node_id = "i=1"\n',
            "security_policy Basic256Sha256 needs certificate, private_key, server_certificate",
        ),
        (
            VALID + OPCUA + 'security_mode = "Sign"\n' + NODE + 'node_id = "i=1"\n',
            "security_mode need(s) security_policy",
        ),
        (
            VALID
            + SECURED
            + 'certificate = "agent.der"\nprivate_key = "agent.pem"\nserver_certificate = "plc.der"\n'
            + NODE
            + 'node_id = "i=1"\n',
            "sources[0].certificate: no such file",
        ),
        (VALID + OPCUA + 'password = "x"\n' + NODE + 'node_id = "i=1"\n', "a password needs a username"),
        (
            VALID + OPCUA + NODE.replace(MACHINE, "press-9") + 'node_id = "i=1"\n',
            "sources[0].nodes[0].machine: 'press-9'",
        ),
        ("server_url = = 1\n", "not valid TOML"),
        (
            'server_url = "http://plant"\napi_key_env = "HALTLESS_AGENT_TEST_UNSET"\n',
            "HALTLESS_AGENT_TEST_UNSET is not set",
        ),
    ],
)
def test_bad_config_names_the_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(content)
    assert run_command(path, once=True, environ={}) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_certificate_file_that_is_no_certificate_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("agent.der", "agent.pem", "plc.der"):
        (tmp_path / name).write_bytes(b"not a certificate")
    path = tmp_path / "agent.toml"
    path.write_text(
        VALID
        + SECURED
        + 'certificate = "agent.der"\nprivate_key = "agent.pem"\nserver_certificate = "plc.der"\n'
        + NODE
        + 'node_id = "i=1"\n'
    )
    assert run_command(path, once=True, environ={}) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "sources[0].certificate: " in err
    assert "not a PEM or DER X.509 certificate" in err
    assert "Traceback" not in err


def test_missing_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    """The real command line, as a service manager would run it."""
    result = run_agent_once(tmp_path / "nowhere.toml")
    assert result.returncode == 2
    assert "nowhere.toml: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_key_comes_from_the_named_variable_and_paths_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "agent.toml"
    path.parent.mkdir()
    path.write_text(
        'server_url = "http://plant:8000/"\napi_key_env = "PLANT_KEY"\n[buffer]\npath = "buf/agent.db"\n'
        '[[sources]]\ntype = "csv"\npath = "replay.csv"\n'
    )
    config = load_config(path, {"PLANT_KEY": "hlk_from_env"})
    assert config.api_key == "hlk_from_env"
    assert config.server_url == "http://plant:8000"
    assert config.buffer.path == tmp_path / "conf" / "buf" / "agent.db"
    assert config.sources[0].path == tmp_path / "conf" / "replay.csv"  # type: ignore[union-attr]


def test_documented_example_config_is_valid(tmp_path: Path) -> None:
    """The full example in docs/agent.md must load (with its key variable set)."""
    text = (Path(__file__).parents[2] / "docs" / "agent.md").read_text()
    path = tmp_path / "agent.toml"
    path.write_text(text.split("```toml\n", 1)[1].split("```", 1)[0])
    config = load_config(path, {"HALTLESS_AGENT_KEY": "hlk_x", "MQTT_PASSWORD": "secret"})
    assert {source.type for source in config.sources} == {"mqtt", "csv", "simulator"}


def test_documented_opcua_and_modbus_examples_are_valid(tmp_path: Path) -> None:
    """The worked examples of docs/agent.md load, with certificates where the OPC UA one expects them."""
    text = (Path(__file__).parents[2] / "docs" / "agent.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```toml\n")[1:]]
    examples = {kind: [b for b in blocks if f'type = "{kind}"' in b] for kind in ("opcua", "modbus")}
    assert [len(found) for found in examples.values()] == [1, 1]
    (tmp_path / "pki").mkdir()
    make_certificate(tmp_path / "pki", "agent", "urn:haltless:agent", server=False)  # agent-cert.der, agent-key.pem
    make_certificate(tmp_path / "pki", "plc", "urn:plc", server=True)  # plc-cert.der
    environ = {"HALTLESS_AGENT_KEY": "hlk_x", "PLC_PASSWORD": "secret"}
    for kind, (example,) in examples.items():
        path = tmp_path / f"{kind}.toml"
        path.write_text(example)
        (source,) = load_config(path, environ).sources
        assert source.type == kind
