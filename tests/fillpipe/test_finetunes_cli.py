"""`fillpipe finetunes` and `fillpipe credits` as a user runs them: separate processes
against the emulator over HTTP, with one account or an accounts file of two keys."""

import json
import os
import pty
import subprocess
import sys

import pytest

from tests.finetune_helpers import (
    CREDITS_A,
    CREDITS_B,
    KEY_A,
    KEY_B,
    KEY_UNUSED,
    emulator_process,
    hermetic_environ,
    tasks_of,
    write_images,
)

pytestmark = pytest.mark.timeout(120)

COMMAND_TIMEOUT_S = 60


def fillpipe(*args, env, stdin=subprocess.DEVNULL):
    """`python -m fillpipe ARGS` with `env`; stdin is not a terminal unless given one."""
    return subprocess.run(
        [sys.executable, "-m", "fillpipe", *args],
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def withdrawn_url(tmp_path_factory):
    """An emulator whose provider no longer offers finetune creation, nor the list or
    the balance."""
    root = tmp_path_factory.mktemp("withdrawn")
    with emulator_process(root, withdrawn="finetune,my_finetunes,credits") as url:
        yield url


def single(url, key=KEY_A, flavor="bfl"):
    """The environment of one account, as `source stack.env` would leave it (without
    Redis or S3: these commands need only the provider)."""
    return {
        **hermetic_environ(),
        "FILLPIPE_PROVIDER_URL": url,
        "FILLPIPE_PROVIDER_KEY": key,
        "FILLPIPE_PROVIDER_FLAVOR": flavor,
    }


@pytest.fixture
def two_accounts(emulator_url, tmp_path):
    """Accounts `brand-a` (BFL flavour, key-a) and `brand-b` (CometAPI, key-b)."""
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'[accounts.brand-a]\nbase_url = "{emulator_url}"\nkey_env = "KEY_A"\n\n'
        f'[accounts.brand-b]\nflavor = "cometapi"\nbase_url = "{emulator_url}"\n'
        'key_env = "KEY_B"\n'
    )
    return {
        **hermetic_environ(),
        "FILLPIPE_ACCOUNTS_FILE": str(path),
        "KEY_A": KEY_A,
        "KEY_B": KEY_B,
    }


def create(folder, env, *extra):
    result = fillpipe(
        "finetunes", "create", str(folder), "--mode", "style", "--comment", "a brand", *extra,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def listed(env, *extra):
    result = fillpipe("finetunes", "list", "--json", *extra, env=env)
    assert result.returncode == 0, result.stderr
    return {(row["account"], row["id"]) for row in json.loads(result.stdout)["finetunes"]}


@pytest.mark.parametrize("flavor", ["bfl", "cometapi"])
def test_create_wait_then_list_show_and_delete(emulator_url, tmp_path, flavor):
    env = single(emulator_url, flavor=flavor)
    write_images(tmp_path / "set", 2)
    extra = ("--trigger-word", "MUGCO", "--iterations", "200", "--type", "lora", "--wait")
    result = fillpipe(
        "finetunes", "create", str(tmp_path / "set"), "--mode", "product",
        "--comment", "Mug Co. products", *extra, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    finetune_id = result.stdout.strip()
    assert "\n" not in finetune_id
    assert f"Finetune {finetune_id} is ready." in result.stderr
    assert "100%" in result.stderr

    lines = fillpipe("finetunes", "list", env=env).stdout.splitlines()
    assert lines[0].split() == [
        "account", "id", "trigger_word", "mode", "type", "created", "comment",
    ]  # fmt: skip
    (row,) = [line for line in lines if finetune_id in line]
    assert row.split()[:5] == ["default", finetune_id, "MUGCO", "product", "lora"]
    assert row.endswith("Mug Co. products")

    shown = json.loads(fillpipe("finetunes", "show", finetune_id, "--json", env=env).stdout)
    assert shown == {
        "account": "default",
        "id": finetune_id,
        "comment": "Mug Co. products",
        "trigger_word": "MUGCO",
        "mode": "product",
        "type": "lora",
        "iterations": 200,
        "status": "Ready",
        "created_at": shown["created_at"],
    }
    assert shown["created_at"].endswith("Z")
    text = fillpipe("finetunes", "show", finetune_id, env=env).stdout
    assert "status        Ready" in text

    deleted = fillpipe("finetunes", "delete", finetune_id, "--yes", env=env)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, finetune_id)
    assert ("default", finetune_id) not in listed(env)


def test_delete_without_a_terminal_needs_yes(emulator_url, tmp_path):
    env = single(emulator_url)
    write_images(tmp_path / "set", 1)
    finetune_id = create(tmp_path / "set", env)
    refused = fillpipe("finetunes", "delete", finetune_id, env=env)
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    assert ("default", finetune_id) in listed(env)


def test_delete_asks_on_the_terminal(emulator_url, tmp_path):
    env = single(emulator_url)
    write_images(tmp_path / "set", 1)
    finetune_id = create(tmp_path / "set", env)
    for answer, code in (("n", 1), ("y", 0)):
        controller, terminal = pty.openpty()
        os.write(controller, f"{answer}\n".encode())
        try:
            result = fillpipe("finetunes", "delete", finetune_id, env=env, stdin=terminal)
        finally:
            os.close(terminal)
            os.close(controller)
        assert result.returncode == code, result.stderr
        assert f"Delete finetune {finetune_id} (a brand) from account default?" in result.stderr
    assert ("default", finetune_id) not in listed(env)


def test_two_accounts_each_see_only_their_own(two_accounts, tmp_path):
    env = two_accounts
    write_images(tmp_path / "set", 1)
    id_a = create(tmp_path / "set", env)  # the default: the first account
    id_b = create(tmp_path / "set", env, "--account", "brand-b")
    everything = listed(env)
    assert {("brand-a", id_a), ("brand-b", id_b)} <= everything
    assert {name for name, id_ in everything if id_ in (id_a, id_b)} == {"brand-a", "brand-b"}
    assert all(name == "brand-b" for name, _ in listed(env, "--account", "brand-b"))
    assert ("brand-b", id_b) in listed(env, "--account", "brand-b")

    # Without --account, show and delete find the account that has the finetune.
    shown = json.loads(fillpipe("finetunes", "show", id_b, "--json", env=env).stdout)
    assert (shown["account"], shown["id"]) == ("brand-b", id_b)
    wrong = fillpipe("finetunes", "show", id_b, "--account", "brand-a", env=env)
    assert wrong.returncode == 2
    assert f"account brand-a has no finetune {id_b}" in wrong.stderr
    assert fillpipe("finetunes", "delete", id_a, "--yes", env=env).returncode == 0
    assert ("brand-a", id_a) not in listed(env)
    missing = fillpipe("finetunes", "show", id_a, env=env)
    assert missing.returncode == 2
    assert f"no configured account lists finetune {id_a} (asked: brand-a, brand-b)" in (
        missing.stderr
    )


def test_an_unknown_account_names_the_configured_ones(two_accounts):
    result = fillpipe("finetunes", "list", "--account", "brand-c", env=two_accounts)
    assert result.returncode == 2
    assert "no provider account named 'brand-c' (configured: brand-a, brand-b)" in result.stderr


def test_credits_of_two_accounts(two_accounts):
    result = fillpipe("credits", env=two_accounts)
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["account", "flavor", "credits", "usd", "error"],
        ["brand-a", "bfl", f"{CREDITS_A:.2f}", f"${CREDITS_A / 100:.2f}"],
        ["brand-b", "cometapi", f"{CREDITS_B:.2f}", f"${CREDITS_B / 100:.2f}"],
    ]
    document = json.loads(fillpipe("credits", "--json", env=two_accounts).stdout)
    assert document["accounts"][1] == {
        "account": "brand-b",
        "flavor": "cometapi",
        "credits": CREDITS_B,
        "usd": CREDITS_B / 100,
        "error": None,
    }


def test_credits_shows_a_refused_key_on_its_line_and_exits_1(two_accounts):
    env = {**two_accounts, "KEY_B": "not-a-key"}
    result = fillpipe("credits", env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["brand-a", "bfl", f"{CREDITS_A:.2f}"]
    assert lines[2].split()[:4] == ["brand-b", "cometapi", "-", "-"]
    assert "error: provider refused the API key" in lines[2]
    assert "not-a-key" not in result.stdout + result.stderr


def test_an_unreachable_account_fails_alone(two_accounts, tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text(
        path.read_text() + '\n[accounts.gone]\nbase_url = "http://127.0.0.1:9"\nkey_env = "KEY_A"\n'
    )
    result = fillpipe("credits", "--json", env=two_accounts)
    assert result.returncode == 1
    gone = json.loads(result.stdout)["accounts"][2]
    assert gone["account"] == "gone"
    assert gone["credits"] is None
    assert gone["error"].startswith("could not reach http://127.0.0.1:")
    assert gone["error"].endswith(" for the credits balance (ConnectError)")


@pytest.mark.parametrize("flavor", ["bfl", "cometapi"])
def test_withdrawn_endpoints_are_a_plain_message_and_exit_1(withdrawn_url, tmp_path, flavor):
    env = single(withdrawn_url, flavor=flavor)
    prefix = "/v1" if flavor == "bfl" else "/flux/v1"
    write_images(tmp_path / "set", 1)
    created = fillpipe(
        "finetunes", "create", str(tmp_path / "set"), "--mode", "style", "--comment", "c",
        env=env,
    )  # fmt: skip
    assert created.returncode == 1
    assert created.stdout == ""
    assert created.stderr.strip() == (
        f"fillpipe: the provider at {withdrawn_url} no longer offers finetune creation "
        f"(POST {prefix}/finetune answered 404); create the finetune in the provider's "
        "dashboard and use its id"
    )
    listing = fillpipe("finetunes", "list", env=env)
    assert listing.returncode == 1
    assert f"(GET {prefix}/my_finetunes answered 404)" in listing.stderr
    balance = fillpipe("credits", env=env)
    assert balance.returncode == 1
    assert f"no longer offers the credits balance (GET {prefix}/credits answered 404)" in (
        balance.stdout
    )


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("empty", ["holds no training images (put 1 to 20"]),
        ("21 images", ["holds 21 images, more than the 20", "move 1 of them out"]),
        ("a non-image", ["notes.docx: is not a .jpg/.jpeg/.png/.webp image"]),
        ("too small", ["photo-00.png: is 300x200 px, under 256 px on its short side"]),
    ],
)
def test_a_bad_training_folder_is_refused_before_any_request(
    emulator_url, tmp_path, layout, expected
):
    folder = tmp_path / "set"
    folder.mkdir()
    if layout == "21 images":
        write_images(folder, 21)
    elif layout == "a non-image":
        write_images(folder, 2)
        (folder / "notes.docx").write_bytes(b"PK\3\4")
    elif layout == "too small":
        write_images(folder, 1, size_px=(300, 200))
    env = single(emulator_url, key=KEY_UNUSED)
    result = fillpipe(
        "finetunes", "create", str(folder), "--mode", "style", "--comment", "c", env=env
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"the training folder {folder} has 1 problem:" in result.stderr
    for text in expected:
        assert text in result.stderr
    assert tasks_of(emulator_url, KEY_UNUSED) == []


def test_create_help_states_the_image_rules():
    result = fillpipe("finetunes", "create", "--help", env=hermetic_environ())
    assert "at least 256 px on its short side" in " ".join(result.stdout.split())
