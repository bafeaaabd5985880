"""The app's HTTP API against a real ``app.py`` process on 127.0.0.1 with the golden checkpoint: a fill is
``inpaint.py``'s result byte for byte, every bad request gets JSON with the right status, fills queue."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import Message

import cv2
import numpy as np
import pytest

from tests.conftest import APP_MAX_PIXELS, ROOT, run_command

TIMEOUT = 300


@pytest.fixture(scope="module")
def server(app_server):
    return app_server


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 96×80 picture with two holes, its mask, and pictures for the refusals."""
    folder = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (80, 96, 3)).astype(np.uint8), (0, 0), 2)
    hole = np.zeros((80, 96), bool)
    hole[10:30, 12:40] = True
    hole[50:66, 60:80] = True
    paths = {"image": folder / "image.png", "mask": folder / "mask.png", "small_mask": folder / "small.png",
             "empty_mask": folder / "empty.png", "big": folder / "big.png", "text": folder / "notes.png"}
    cv2.imwrite(str(paths["image"]), image)
    cv2.imwrite(str(paths["mask"]), hole.astype(np.uint8) * 255)
    cv2.imwrite(str(paths["small_mask"]), np.full((40, 48), 255, np.uint8))
    cv2.imwrite(str(paths["empty_mask"]), np.zeros((80, 96), np.uint8))
    cv2.imwrite(str(paths["big"]), np.zeros((400, 400, 3), np.uint8))       # 160,000 pixels > APP_MAX_PIXELS
    paths["text"].write_text("this is not a picture")
    return {name: str(path) for name, path in paths.items()}


def multipart(fields: dict[str, str | tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode form fields (text, or (filename, bytes) for files) as multipart/form-data."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            body += (f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n").encode() + value[1] + b"\r\n"
        else:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, Message, bytes]:
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=TIMEOUT) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def inpaint(server, image: str, mask: str, **options: str) -> tuple[int, Message, bytes]:
    fields = {name: (os.path.basename(path), open(path, "rb").read()) for name, path in
              (("image", image), ("mask", mask))}
    return request(server.url + "/api/inpaint", *multipart({**fields, **options}))


def test_fill_equals_inpaint_py_byte_for_byte(server, files, golden_checkpoint, tmp_path):
    status, headers, body = inpaint(server, files["image"], files["mask"])
    assert status == 200 and headers["Content-Type"] == "image/png" and headers["X-HD-Strategy"] == "full"
    output, flow = str(tmp_path / "cli.png"), str(tmp_path / "cli_flow.png")
    result = run_command("inpaint.py", "--checkpoint", golden_checkpoint, "--image", files["image"], "--mask",
                         files["mask"], "--output", output, "--flow", flow)
    assert result.returncode == 0, result.stderr
    with open(output, "rb") as handle:
        assert body == handle.read()
    status, headers, body = inpaint(server, files["image"], files["mask"], flow="true")
    answer = json.loads(body)
    assert status == 200 and answer["hd_strategy"] == "full" and answer["seconds"] > 0
    with open(output, "rb") as handle:
        assert base64.b64decode(answer["image"]) == handle.read()
    with open(flow, "rb") as handle:
        assert base64.b64decode(answer["flow"]) == handle.read()


def test_strategy_is_chosen_and_reported(server, files, tmp_path):
    status, headers, body = inpaint(server, files["image"], files["mask"], hd_strategy="crop")
    assert status == 200 and headers["X-HD-Strategy"] == "crop"
    filled = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    image, hole = cv2.imread(files["image"]), cv2.imread(files["mask"], cv2.IMREAD_GRAYSCALE) > 127
    assert (filled[~hole] == image[~hole]).all() and (filled[hole] != image[hole]).any()
    wide = np.zeros((32, 1100, 3), np.uint8)        # over 1024 px on a side: auto means crop
    wide_hole = np.zeros((32, 1100), np.uint8)
    wide_hole[8:20, 500:520] = 255
    cv2.imwrite(str(tmp_path / "wide.png"), wide)
    cv2.imwrite(str(tmp_path / "wide_mask.png"), wide_hole)
    status, headers, _ = inpaint(server, str(tmp_path / "wide.png"), str(tmp_path / "wide_mask.png"),
                                 hd_strategy="auto")
    assert status == 200 and headers["X-HD-Strategy"] == "crop"
    status, headers, _ = inpaint(server, files["image"], files["mask"], hd_strategy="auto")
    assert status == 200 and headers["X-HD-Strategy"] == "full"


def test_model_and_health(server):
    status, _, body = request(server.url + "/api/model")
    model = json.loads(body)
    assert status == 200 and model["name"] == "official_golden" and model["channel_order"] == "BGR"
    assert (model["image_size"], model["hole_size"], model["max_pixels"]) == (128, 64, APP_MAX_PIXELS)
    assert model["source"] and model["version"] == 1 and model["models"] == ["official_golden"]
    assert model["trained_on"] == f"{model['source']}, 128×128 pictures with boxes"
    status, _, body = request(server.url + "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = request(server.url + "/openapi.json")
    assert status == 200 and {"/api/inpaint", "/api/model", "/health"} <= set(json.loads(body)["paths"])


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    status, _, answer = request(url, body, "application/json")
    return status, json.loads(answer)


def cli_fill(checkpoint: str, files: dict[str, str], output: str, cache: str) -> bytes:
    result = run_command("inpaint.py", "--checkpoint", checkpoint, "--image", files["image"], "--mask",
                         files["mask"], "--output", output, env={"DEEPFILL_HOME": cache})
    assert result.returncode == 0, result.stderr
    with open(output, "rb") as handle:
        return handle.read()


def test_the_menu_switches_between_the_cached_models(menu_server, model_cache, files, tmp_path):
    """``--checkpoint places2_v2`` serves DeepFill v2; the menu holds both cached releases; switching loads
    the other on the server, and each fill is what inpaint.py gives with that model."""
    url = menu_server.url
    model = json.loads(request(url + "/api/model")[2])
    assert (model["name"], model["version"], model["cnum"]) == ("places2_v2", 2, 48)
    assert model["trained_on"] == "Places2, 256×256 pictures with boxes and free-form brush strokes"
    assert model["source"] == "pretrained places2_v2 (official v2.0.0 release, Places2)"
    assert model["models"] == ["places2", "places2_v2"]
    status, _, body = inpaint(menu_server, files["image"], files["mask"], flow="true")
    answer = json.loads(body)
    assert status == 200 and answer["model"] == "places2_v2"
    assert base64.b64decode(answer["image"]) == cli_fill("places2_v2", files, str(tmp_path / "v2.png"), model_cache)

    status, switched = post_json(url + "/api/model", b'{"name": "places2"}')
    assert status == 200 and (switched["name"], switched["version"], switched["image_size"]) == ("places2", 1, 128)
    assert switched["models"] == model["models"] and menu_server.logged("now serving places2 (DeepFill v1)")
    assert json.loads(request(url + "/api/model")[2])["name"] == "places2"
    status, _, body = inpaint(menu_server, files["image"], files["mask"])
    assert status == 200 and body == cli_fill("places2", files, str(tmp_path / "v1.png"), model_cache)

    for bad, words in ((b'{"name": "imagenet"}', ["no model 'imagenet'", "places2, places2_v2"]),
                       (b'{"name": "/etc/passwd"}', ["no model '/etc/passwd'"]),
                       (b"places2", ['send JSON {"name": NAME}'])):
        status, refused = post_json(url + "/api/model", bad)
        assert status == 400 and all(word in refused["error"] for word in words), refused
    status, back = post_json(url + "/api/model", b'{"name": "places2_v2"}')
    assert status == 200 and back["version"] == 2


@pytest.mark.parametrize("case, status, words", [
    ("not_an_image", 400, ["cannot read the image (notes.png)"]),
    ("mask_size", 400, ["48x40", "96x80", "not resized"]),
    ("empty_mask", 400, ["no hole"]),
    ("too_big", 413, ["400x400", str(APP_MAX_PIXELS)]),
    ("json_body", 415, ["multipart/form-data", "application/json"]),
    ("missing_mask", 400, ["'mask' is missing"]),
    ("bad_strategy", 400, ["hd_strategy", "sideways"]),
])
def test_bad_requests_get_json_errors(server, files, case, status, words):
    url = server.url + "/api/inpaint"
    image = ("image.png", open(files["image"], "rb").read())
    mask = ("mask.png", open(files["mask"], "rb").read())
    if case == "not_an_image":
        answer = inpaint(server, files["text"], files["mask"])
    elif case == "mask_size":
        answer = inpaint(server, files["image"], files["small_mask"])
    elif case == "empty_mask":
        answer = inpaint(server, files["image"], files["empty_mask"])
    elif case == "too_big":
        answer = inpaint(server, files["big"], files["mask"])
    elif case == "json_body":
        answer = request(url, b'{"image": "x"}', "application/json")
    elif case == "missing_mask":
        answer = request(url, *multipart({"image": image}))
    else:
        answer = request(url, *multipart({"image": image, "mask": mask, "hd_strategy": "sideways"}))
    code, headers, body = answer
    assert code == status and headers["Content-Type"] == "application/json", body
    message = json.loads(body)["error"]
    for word in words:
        assert word in message, message


def test_two_fills_at_once_both_succeed(server, files):
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: inpaint(server, files["image"], files["mask"]), range(2)))
    assert [status for status, _, _ in answers] == [200, 200]
    assert answers[0][2] == answers[1][2]
    status, _, body = request(server.url + "/health")
    assert status == 200 and json.loads(body)["waiting"] == 0


def test_without_a_checkpoint_it_says_how_to_get_one(tmp_path):
    env = {**os.environ, "DEEPFILL_HOME": str(tmp_path / "cache"), "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "app.py"), "--port", "0"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("error: no checkpoint found") and "download_pretrained.py" in line, line
    assert "python train.py" in line and "--checkpoint" in line


def test_default_checkpoint_is_the_newest_in_the_cache_else_the_demo(tmp_path, monkeypatch):
    from deepfill.inpainting.server import default_checkpoint
    monkeypatch.setenv("DEEPFILL_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    os.makedirs("checkpoints/demo")
    open("checkpoints/demo/step_00000200.pdparams", "wb").close()
    assert default_checkpoint() == os.path.join("checkpoints", "demo")
    os.makedirs("cache")
    for age, name in ((200, "places2"), (100, "celeba"), (300, "imagenet")):
        open(f"cache/{name}.pdparams", "wb").close()
        os.utime(f"cache/{name}.pdparams", (1e9 - age, 1e9 - age))
    assert default_checkpoint() == "celeba"          # by name, so that its checksum is verified
    open("cache/mine.pdparams", "wb").close()        # not a release name: never picked
    assert default_checkpoint() == "celeba"
    for age, name in ((500, "celebahq_v2"), (400, "places2_v2")):
        open(f"cache/{name}.pdparams", "wb").close()
        os.utime(f"cache/{name}.pdparams", (1e9 - age, 1e9 - age))
    assert default_checkpoint() == "places2_v2"      # a v2 model, made for brush strokes, before any v1


def test_a_busy_port_is_one_line(server, golden_checkpoint):
    port = server.url.rsplit(":", 1)[1]
    result = run_command("app.py", "--checkpoint", golden_checkpoint, "--port", port)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}"), result.stderr
