"""docker/compose.yaml and docker/Dockerfile, checked without a Docker engine: the compose file parses, every
path they name exists, every `nasscore …` and `ray …` command they run parses with the real command-line
parsers, every NASSCORE_* variable they set is a setting the server accepts (with the values given), and
docker/.env.example documents exactly the variables the compose file reads."""

import json
import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT

from app.cli import build_parser
from app.settings import Settings

DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
# Compose's own variables (COMPOSE_PROFILES, …) configure Compose itself, not the file.
COMPOSE_VARIABLE_PREFIX = "COMPOSE_"
TEST_RAY_TOKEN = "0123456789abcdef0123456789abcdef"

VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?])(?P<argument>[^}]*))?\}")
SHELL_SEPARATORS = ("&&", "||", ";")
NASSCORE_IN_BACKTICKS = re.compile(r"`([^`\n]*\bnasscore [^`\n]*)`")


def interpolate(text: str, environment: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""

    def resolve(match: re.Match[str]) -> str:
        name, operator, argument = match["name"], match["operator"], match["argument"]
        value = environment.get(name)
        missing = value is None or (operator is not None and operator.startswith(":") and value == "")
        if operator is not None and missing:
            if operator.endswith("?"):
                raise ValueError(f"{name} is required: {argument}")
            return argument
        return value or ""

    return VARIABLE.sub(resolve, text.replace("$$", "\0")).replace("\0", "$")


def resolved(document: Any, environment: dict[str, str]) -> Any:
    if isinstance(document, str):
        return interpolate(document, environment)
    if isinstance(document, dict):
        return {key: resolved(value, environment) for key, value in document.items()}
    if isinstance(document, list):
        return [resolved(value, environment) for value in document]
    return document


def env_example() -> dict[str, str]:
    """The variables docker/.env.example sets, and those it documents in comments (`# NAME=`)."""
    pairs = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return {name: value.strip() for name, value in pairs}


def example_environment() -> dict[str, str]:
    """What Compose would see with docker/.env copied from the example and the one required secret filled in."""
    uncommented = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return {name: value.strip() for name, value in uncommented} | {"RAY_AUTH_TOKEN": TEST_RAY_TOKEN}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return resolved(yaml.safe_load(COMPOSE_FILE.read_text()), example_environment())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def shell_commands(script: str) -> Iterator[list[str]]:
    """Each simple command of a `sh -c` script (`a && exec b` -> [a…], [b…])."""
    command: list[str] = []
    for token in [*shlex.split(script), SHELL_SEPARATORS[0]]:
        if token in SHELL_SEPARATORS:
            if command:
                yield command[1:] if command[0] == "exec" else command
            command = []
        else:
            command.append(token)


def service_commands(service: dict[str, Any]) -> list[list[str]]:
    command = service.get("command")
    if command is None:
        return []
    if isinstance(command, str):
        return list(shell_commands(command))
    if command[:2] == ["sh", "-c"]:
        return list(shell_commands(command[2]))
    return [command]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_commands() -> list[list[str]]:
    """The commands of RUN, CMD and HEALTHCHECK … CMD, in shell or exec form."""
    commands: list[list[str]] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "HEALTHCHECK":
            arguments = arguments.split(" CMD ", 1)[1].strip()
        if instruction not in ("RUN", "CMD", "HEALTHCHECK"):
            continue
        if arguments.startswith("["):
            argv = json.loads(arguments)
            commands += list(shell_commands(argv[2])) if argv[:2] == ["sh", "-c"] else [argv]
        else:
            commands += list(shell_commands(arguments))
    return commands


def parses_as_nasscore(argv: list[str]) -> str | None:
    """None when `nasscore` accepts the command line (`--help` included), else why not."""
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exit:
        return None if exit.code == 0 else f"{shlex.join(argv)}: exit {exit.code}"
    return None if callable(getattr(args, "handler", None)) else f"{shlex.join(argv)}: no command"


def test_the_compose_file_requires_the_ray_token_and_parses_with_the_example_settings(compose: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RAY_AUTH_TOKEN is required"):
        resolved(yaml.safe_load(COMPOSE_FILE.read_text()), example_environment() | {"RAY_AUTH_TOKEN": ""})
    assert {"db", "migrate", "ray-head", "ray-worker", "ray-worker-cpu", "api-1", "api-2"} <= set(services(compose))
    for name, service in services(compose).items():
        assert set(service.get("depends_on", {})) <= set(services(compose)), name
        named_volumes = [volume.split(":")[0] for volume in service.get("volumes", []) if volume[0] not in "./"]
        assert set(named_volumes) <= set(compose.get("volumes", {})), name


def test_every_path_it_names_exists(compose: dict[str, Any]) -> None:
    builds = [service["build"] for service in services(compose).values() if "build" in service]
    assert builds, "the nasscore image is built from the repository"
    for build in builds:
        context = (DOCKER_DIR / build["context"]).resolve()
        assert context == REPO_ROOT
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    binds = [
        volume.split(":")[0]
        for service in services(compose).values()
        for volume in service.get("volumes", [])
        if volume[0] in "./"
    ]
    assert binds, "the API containers mount the calibration data folder"
    assert all((DOCKER_DIR / source).is_dir() for source in binds), binds
    copied = [
        source
        for instruction, arguments in dockerfile_instructions()
        if instruction == "COPY" and not arguments.startswith("--from")
        for source in shlex.split(arguments)[:-1]
    ]
    assert "alembic" in copied, "the migrations go into the wheel"
    assert [source for source in copied if not (REPO_ROOT / source).exists()] == []


def test_every_nasscore_command_it_runs_or_names_is_a_real_one(compose: dict[str, Any]) -> None:
    run = [argv for service in services(compose).values() for argv in service_commands(service)]
    run += dockerfile_commands()
    nasscore = [argv for argv in run if argv[0] == "nasscore"]
    assert {tuple(argv[:2]) for argv in nasscore} >= {("nasscore", "serve"), ("nasscore", "db")}
    named = [
        match
        for path in (COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE)
        for match in NASSCORE_IN_BACKTICKS.findall(path.read_text())
    ]
    assert any("keys create" in text for text in named), "the first admin key is documented"
    for text in named:
        argv = shlex.split(text)
        if "run" in argv:  # docker compose … run --rm SERVICE nasscore …: a service of this file
            assert argv[argv.index("nasscore") - 1] in services(compose), text
        nasscore.append(argv[argv.index("nasscore") :])
    assert [problem for argv in nasscore if (problem := parses_as_nasscore(argv))] == []


def test_every_ray_command_it_runs_is_a_real_one(compose: dict[str, Any]) -> None:
    import click

    ray_cli = pytest.importorskip("ray.scripts.scripts").cli
    commands = [argv for service in services(compose).values() for argv in service_commands(service)]
    ray_commands = [argv for argv in commands if argv[0] == "ray"]
    assert len(ray_commands) >= 4, "the head, the workers and the API nodes start Ray"
    for argv in ray_commands:
        subcommand = ray_cli.commands[argv[1]]
        try:
            subcommand.make_context(argv[1], argv[2:])
        except click.ClickException as error:
            pytest.fail(f"{shlex.join(argv)}: {error.format_message()}")


def test_the_api_replicas_reach_the_ray_head_and_the_workers_reserve_gpus(compose: dict[str, Any]) -> None:
    everything = services(compose)
    head_command = service_commands(everything["ray-head"])[0]
    assert "--head" in head_command
    head_address = f"ray-head:{next(a for a in head_command if a.startswith('--port=')).split('=')[1]}"
    apis = {name: service for name, service in everything.items() if name.startswith("api-")}
    assert len(apis) == 2
    assert len({port for service in apis.values() for port in service["ports"]}) == 2, "one host port each"
    for service in apis.values():
        assert service["environment"]["NASSCORE_EXECUTOR"] == "ray"
        assert service["environment"]["NASSCORE_RAY_ADDRESS"] == head_address
    joining = [argv for name in [*apis, "ray-worker", "ray-worker-cpu"] for argv in service_commands(everything[name])]
    assert all(f"--address={head_address}" in argv for argv in joining if argv[0] == "ray")
    [gpus] = everything["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert (gpus["driver"], gpus["capabilities"]) == ("nvidia", ["gpu"])
    assert everything["ray-worker"]["profiles"] == ["gpu"] and everything["ray-worker-cpu"]["profiles"] == ["cpu"]
    assert env_example()["COMPOSE_PROFILES"] in ("gpu", "cpu")


def test_every_nasscore_variable_it_sets_is_a_setting_with_a_valid_value(compose: dict[str, Any]) -> None:
    dockerfile_env = {
        key: value
        for instruction, arguments in dockerfile_instructions()
        if instruction == "ENV"
        for key, _, value in (pair.partition("=") for pair in shlex.split(arguments))
    }
    checked = 0
    for name, service in services(compose).items():
        environment = dockerfile_env | service.get("environment", {})
        settings = {
            key.removeprefix("NASSCORE_").lower(): value
            for key, value in environment.items()
            if key.startswith("NASSCORE_") and value is not None
        }
        assert set(settings) <= set(Settings.model_fields), name
        Settings(_env_file=None, **settings)  # raises on a value the server would refuse
        checked += len(settings)
    assert checked


def test_env_example_documents_exactly_the_variables_compose_reads() -> None:
    text = COMPOSE_FILE.read_text()
    interpolated = {match["name"] for match in VARIABLE.finditer(text)}
    document = yaml.safe_load(text)
    passed_through = {
        key
        for service in document["services"].values()
        if isinstance(service.get("environment"), dict)
        for key, value in service["environment"].items()
        if value is None
    }
    documented = {name for name in env_example() if not name.startswith(COMPOSE_VARIABLE_PREFIX)}
    assert passed_through, "NASSCORE_ADMIN_KEY_SHA256 is passed through"
    assert sorted((interpolated | passed_through) - documented) == [], "used by compose, not in .env.example"
    assert sorted(documented - interpolated - passed_through) == [], "in .env.example, not used by compose"
