"""Deployment files: the example checks, each wrong file is refused with its key, the
rendered programs are real overwatch command lines, and the Docker files run real roles."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from overwatch import deploy
from overwatch.cli import build_parser
from overwatch.deploy_schema import DeployError, load_deployment, parse_deployment

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "config" / "deploy.example.yaml"
BIN = Path(sys.executable).parent
OVERWATCH = str(BIN / "overwatch")


def _example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _refused(data: dict, match: str) -> str:
    with pytest.raises(DeployError, match=match) as caught:
        parse_deployment(data, "deploy.yaml")
    assert str(caught.value).startswith("deploy.yaml: ")
    return str(caught.value)


def _parsed(command: list[str]):
    """``command`` (without the program) parsed by the real ``overwatch`` parser."""
    try:
        return build_parser().parse_args(command)
    except SystemExit as exit:  # argparse refused it
        raise AssertionError(f"not an overwatch command line: {command}") from exit


def test_the_example_checks_and_renders_every_program(tmp_path) -> None:
    deployment = load_deployment(EXAMPLE)
    assert deployment.database.uri == "zeo://127.0.0.1:8100"
    assert [(w.name, w.subsystems) for w in deployment.workers] == [
        ("calorimeter", ("EMC", "TOF")),
        ("tracking", ("TPC", "HLT")),
    ]
    assert deployment.notifiers["mail_from"] == "overwatch@localhost"
    listed = {p.name: p for p in deploy.programs(deployment, BIN)}
    assert list(listed) == ["zeo", "receiver-EMC", "receiver-TPC", "receiver-HLT",
                            "processing-calorimeter", "processing-tracking", "web"]  # fmt: skip
    assert "receiver-TOF" not in listed  # an upload: through the web server
    for name, program in listed.items():
        if name == "zeo":
            assert program.command[1:3] == ("-a", "127.0.0.1:8100")
            continue
        args = _parsed(list(program.command[1:]))
        assert args.config == str(deployment.data_dir / deploy.SETTINGS_FILE)
    tracking = _parsed(list(listed["processing-tracking"].command[1:]))
    assert tracking.subsystems == "TPC,HLT" and tracking.worker == "tracking"
    web = _parsed(list(listed["web"].command[1:]))
    assert (web.port, web.workers, web.threads, web.host) == (8850, 2, 4, "127.0.0.1")
    # Only the first worker binds the notice and event addresses.
    assert listed["processing-calorimeter"].environment == {}
    assert listed["processing-tracking"].environment == {
        "OVERWATCH_RECEIVER__NOTIFY_ADDRESS": "",
        "OVERWATCH_PROCESSING__EVENTS_ADDRESS": "",
    }


def test_the_rendered_configuration_is_supervisords(tmp_path) -> None:
    data = _example()
    data["data_dir"] = str(tmp_path / "data")
    data["receivers"][0]["connect"] = "ipc:///tmp/100%.sock"  # % must reach the sender as is
    deployment = parse_deployment(data, "deploy.yaml")
    text = deploy.render(deployment, BIN)
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    programs = [s.removeprefix("program:") for s in parser.sections() if s.startswith("program:")]
    assert programs == [p.name for p in deploy.programs(deployment, BIN)]
    assert parser["supervisord"]["pidfile"] == str(tmp_path / "data" / "supervisord.pid")
    assert parser["program:zeo"]["priority"] == "10" and parser["program:web"]["priority"] == "50"
    assert "100%%.sock" in parser["program:receiver-EMC"]["command"]
    assert parser["program:processing-tracking"]["environment"].startswith(
        'OVERWATCH_RECEIVER__NOTIFY_ADDRESS=""'
    )
    assert "environment" not in parser["program:web"]


def test_the_settings_layer_every_process_reads(tmp_path) -> None:
    data = _example()
    data["data_dir"] = str(tmp_path / "data")
    deployment = parse_deployment(data, "deploy.yaml")
    deploy.write_files(deployment, BIN)
    from overwatch.config import load_settings

    settings = load_settings(tmp_path / "data" / deploy.SETTINGS_FILE, env={},
                             search_user_dirs=False)  # fmt: skip
    assert settings.data.data_dir == str(tmp_path / "data")
    assert settings.database.uri == "zeo://127.0.0.1:8100"
    assert settings.web.secret_key_file == str(tmp_path / "data" / ".secret_key")
    assert settings.alarms.mail_from == "overwatch@localhost" and settings.alarms.smtp_port == 25
    assert settings.receiver.notify_address == "tcp://127.0.0.1:8851"
    assert (tmp_path / "data" / "supervisord.conf").read_text() == deploy.render(deployment, BIN)


def test_an_external_database_starts_no_server() -> None:
    data = _example()
    data["database"] = {"uri": "postgresql://overwatch@db.example.org:5432/overwatch"}
    deployment = parse_deployment(data, "deploy.yaml")
    names = [p.name for p in deploy.programs(deployment, BIN)]
    assert "zeo" not in names
    web = next(p for p in deploy.programs(deployment, BIN) if p.name == "web")
    assert (
        _parsed(list(web.command[1:])).db == "postgresql://overwatch@db.example.org:5432/overwatch"
    )


def test_two_workers_owning_one_subsystem_are_refused() -> None:
    data = _example()
    data["processing"][1]["subsystems"] = ["TPC", "EMC"]
    message = _refused(data, r"processing\[1\]\.subsystems\[1\]")
    assert "EMC is already owned by processing[0]" in message


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    data = _example()
    data["web"]["thread"] = 8
    message = _refused(data, r"web\.thread: unknown key")
    assert "did you mean 'web.threads'?" in message
    data = _example()
    data["recievers"] = data.pop("receivers")
    assert "did you mean 'receivers'?" in _refused(data, r"recievers: unknown key")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["web"].update(port=70000), r"web\.port: expected a port number from 1 to 65535, got 70000"),
        (lambda d: d["web"].update(port="8850"), r"web\.port: expected a port number"),
        (lambda d: d["database"]["zeo"].update(address="localhost:0"), r"database\.zeo\.address: expected a port number"),
        (lambda d: d["database"]["zeo"].update(address="8100"), r"database\.zeo\.address: expected HOST:PORT"),
        (lambda d: d["receivers"][1].update(connect="127.0.0.1:60322"), r"receivers\[1\]\.connect: expected tcp://HOST:PORT"),
        (lambda d: d["receivers"][0].update(interval=0), r"receivers\[0\]\.interval: expected a number > 0, got 0"),
        (lambda d: d["receivers"][0].update(jitter=2), r"receivers\[0\]\.jitter: expected a fraction"),
        (lambda d: d["receivers"][0].update(pattern="push"), r"receivers\[0\]\.pattern: expected one of req, sub, upload"),
        (lambda d: d["receivers"][0].update(subsystem="E/M"), r"receivers\[0\]\.subsystem: expected a subsystem name"),
        (lambda d: d["receivers"][3].update(connect="tcp://a:1"), r"receivers\[3\]\.connect: an upload receiver has no process"),
        (lambda d: d["receivers"][1].update(subsystem="EMC"), r"receivers\[1\]\.subsystem: one receiver per subsystem: EMC already has receivers\[0\]"),
        (lambda d: d["receivers"].append({"subsystem": "ZDC", "pattern": "upload"}), r"receivers\[4\]\.subsystem: ZDC is owned by no worker"),
        (lambda d: d["processing"][1].pop("subsystems"), r"processing\[1\]\.subsystems: required with several workers"),
        (lambda d: d["processing"][1].update(name="calorimeter"), r"processing\[1\]\.name: name 'calorimeter' is already used by processing\[0\]\.name"),
        (lambda d: d.update(processing=[]), r"processing: expected at least one worker"),
        (lambda d: d["web"].update(workers=0), r"web\.workers: expected a whole number > 0, got 0"),
        (lambda d: d["web"].update(port=8100), r"database\.zeo\.address: port 8100 is already used by web\.port"),
        (lambda d: d.update(database={"uri": "file:///srv/o.fs"}), r"database\.uri: .*a file storage is one process only"),
        (lambda d: d.update(database={}), r"database: expected either 'zeo'"),
        (lambda d: d.pop("data_dir"), r"data_dir: required key is missing"),
        (lambda d: d["notifiers"].update(smtp_port="x"), r"deploy\.yaml: notifiers: alarms\.smtp_port"),
        (lambda d: d["notifiers"].update(mail_too=[]), r"notifiers: unknown key 'alarms\.mail_too' \(did you mean 'alarms\.mail_to'"),
        (lambda d: d["settings"].update(recever={"jitter": 0.1}), r"settings: unknown section 'recever'"),
        (lambda d: d["settings"].update(database={"uri": "zeo://a:1"}), r"settings\.database\.uri: set it with the deployment's 'database' key"),
        (lambda d: d.update(simulator={"bind": "tcp://127.0.0.1:1"}, replay={"source": "x", "bind": "tcp://127.0.0.1:2"}), r"replay: a simulator or a replay, not both"),
        (lambda d: d.update(simulator={"bind": "tcp://127.0.0.1:8850"}), r"simulator\.bind: port 8850 is already used by web\.port"),
        (lambda d: d.update(replay={"source": "x", "bind": "tcp://127.0.0.1:2", "speed": "fast"}), r"replay\.speed: expected a number > 0 or max"),
    ],
)  # fmt: skip
def test_a_wrong_file_is_refused_naming_the_key(change, match) -> None:
    data = _example()
    change(data)
    _refused(data, match)


def test_a_file_that_is_not_a_deployment(tmp_path) -> None:
    broken = tmp_path / "deploy.yaml"
    broken.write_text("data_dir: [unclosed\n")
    with pytest.raises(DeployError, match=rf"{broken}: not valid YAML"):
        load_deployment(broken)
    broken.write_text("- a list\n")
    with pytest.raises(DeployError, match=rf"{broken}: expected a mapping of keys"):
        load_deployment(broken)
    with pytest.raises(DeployError, match=r"cannot read the deployment file"):
        load_deployment(tmp_path / "missing.yaml")


def _deploy(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [OVERWATCH, "deploy", *argv], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_the_command_checks_renders_and_prints_the_example(tmp_path) -> None:
    checked = _deploy(str(EXAMPLE), "--check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{EXAMPLE}: valid, 7 programs under supervisord")
    assert "uploads through the web server (POST /api/upload): TOF" in checked.stdout
    rendered = _deploy(str(EXAMPLE), "--render-only")
    assert rendered.returncode == 0 and "[program:processing-tracking]" in rendered.stdout
    assert not (REPOSITORY / "overwatch-data").exists()  # rendering writes nothing
    example = _deploy("--example")
    assert example.returncode == 0 and example.stdout == EXAMPLE.read_text()
    data = _example()
    data["web"]["port"] = 0
    wrong = tmp_path / "deploy.yaml"
    wrong.write_text(yaml.safe_dump(data))
    refused = _deploy(str(wrong), "--check")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"overwatch deploy: {wrong}: web.port: expected a port number from 1 to 65535, got 0"
    )
    assert _deploy().returncode == 2  # no file, no --example


def test_a_deployment_refuses_a_busy_port_before_writing_anything(tmp_path) -> None:
    import socket

    data = _example()
    data["data_dir"] = str(tmp_path / "data")
    with socket.socket() as web:
        web.bind(("127.0.0.1", 0))
        web.listen()
        data["web"]["port"] = web.getsockname()[1]
        data["database"]["zeo"]["address"] = f"127.0.0.1:{deploy.free_port()}"
        file = tmp_path / "deploy.yaml"
        file.write_text(yaml.safe_dump(data))
        done = _deploy(str(file))
    assert done.returncode == 2
    assert f"already in use: web.port {data['web']['port']}" in done.stderr
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- Docker


def test_compose_runs_the_demo_as_services_sharing_one_volume() -> None:
    compose = yaml.safe_load((REPOSITORY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"database", "simulator", "processing", "web"} <= set(services)
    receivers = {name for name in services if name.startswith("receiver-")}
    assert receivers == {"receiver-emc", "receiver-tpc", "receiver-hlt"}
    assert list(compose["volumes"]) == ["overwatch-data"]
    for name, service in services.items():
        assert "overwatch-data:/data" in service["volumes"], name
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
    database = services["database"]
    assert database["entrypoint"] == ["runzeo"]
    assert database["command"][database["command"].index("-f") + 1].startswith("/data/")
    zeo_port = database["command"][database["command"].index("-a") + 1].split(":")[1]
    roles = {}
    for name, service in services.items():
        if name == "database":
            continue
        assert "entrypoint" not in service, name  # the image's: overwatch
        roles[name] = _parsed(list(service["command"]))
        env = service["environment"]
        assert env["OVERWATCH_DATABASE__URI"] == f"zeo://database:{zeo_port}", name
        assert env["OVERWATCH_DATA__DATA_DIR"] == "/data", name
    assert roles["simulator"].command == "simulate" and roles["processing"].command == "process"
    assert roles["web"].command == "web" and roles["web"].host == "0.0.0.0"
    sim_port = roles["simulator"].bind.rsplit(":", 1)[1]
    for name in receivers:
        assert roles[name].command == "receive"
        assert roles[name].connect == f"tcp://simulator:{sim_port}"
        assert services[name]["environment"]["OVERWATCH_RECEIVER__NOTIFY_ADDRESS"] == (
            "tcp://processing:8851"
        )
    assert services["processing"]["environment"]["OVERWATCH_RECEIVER__NOTIFY_ADDRESS"] == (
        "tcp://0.0.0.0:8851"  # processing binds what the receivers connect to
    )
    assert {r.subsystem for n, r in roles.items() if n in receivers} == {"EMC", "TPC", "HLT"}
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["processing"]["healthcheck"] == {"disable": True}


def test_the_image_installs_only_the_wheel_and_runs_overwatch_roles() -> None:
    text = (REPOSITORY / "docker" / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].split()[2] == "build"
    build, final = stages
    assert "pip wheel" in build
    copies = re.findall(r"^COPY (.*)$", final, re.M)
    assert copies and all(c.startswith("--from=build /wheels") for c in copies), copies
    assert "--no-index" in final
    user = re.findall(r"^USER (\S+)", final, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final, re.M)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", final, re.M)[1])
    command = json.loads(re.search(r"^CMD (.*)$", final, re.M)[1])
    assert entrypoint == ["overwatch"]
    args = _parsed(command)
    assert args.command == "demo" and args.host == "0.0.0.0"
    for role in ("deploy /etc/overwatch/deploy.yaml", "web --host 0.0.0.0", "process",
                 "receive --subsystem EMC --connect tcp://sender:60321"):  # fmt: skip
        assert _parsed(shlex.split(role)).command == role.split()[0]
