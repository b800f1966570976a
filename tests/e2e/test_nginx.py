"""deploy/nginx.conf in front of gunicorn (as the Procfile runs it): slow clients cost nginx, not the app.

Runs Debian's nginx (installed by `make system-packages`) with the repository's own server block, on
free ports of this machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from bench.service import procfile_web_command
from tests.workers import ROOT, free_port, wait_for

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 200


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def app_behind_nginx(tmp_path):
    """(nginx's URL, gunicorn's URL): gunicorn as the Procfile starts it, nginx with deploy/nginx.conf."""
    app_port, proxy_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "DJANGO_SECRET_KEY": "nginx-test"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([str(bin_dir / "python"), "-m", "videojobs.datadir"], env=env, cwd=ROOT, check=True)
    web = subprocess.Popen(
        procfile_web_command(app_port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gunicorn.log", "wb"),
        start_new_session=True,
    )
    server_block = (ROOT / "deploy" / "nginx.conf").read_text()
    server_block = server_block.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};")
    server_block = server_block.replace("listen 80;", f"listen 127.0.0.1:{proxy_port};")
    (tmp_path / "site.conf").write_text(server_block)
    for folder in ("logs", "temp"):
        (tmp_path / folder).mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/temp; proxy_temp_path {tmp_path}/temp;\n"
        f"include {tmp_path}/site.conf; }}\n"
    )
    proxy = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off; user root;"],
        stderr=open(tmp_path / "nginx.log", "wb"),
    )
    proxy_url, app_url = f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{app_port}"
    try:
        wait_for(lambda: _answers(f"{proxy_url}/login/"), timeout=60, message="nginx and gunicorn to answer")
        yield proxy_url, app_url
    finally:
        proxy.terminate()
        web.terminate()
        for process in (proxy, web):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_200_clients_sending_a_header_byte_a_second_do_not_stop_the_site(app_behind_nginx):
    proxy_url, _app_url = app_behind_nginx
    port = int(proxy_url.rsplit(":", 1)[1])
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(SLOW_CLIENTS)]
    for _ in range(8):  # both gunicorn workers warmed up (imports, first connections): not what is measured
        requests.get(f"{proxy_url}/login/", timeout=10)
    stop, dribbling = threading.Event(), threading.Event()

    def dribble():  # one more header byte a second on every connection, never the end of the headers
        request = b"GET /login/ HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000
        for index in range(len(request)):
            for sock in sockets:
                try:
                    sock.send(request[index : index + 1])
                except OSError:
                    pass
            dribbling.set()
            if stop.wait(1):
                return

    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    try:
        assert dribbling.wait(30)  # every slow connection has sent its first bytes and waits for the next
        times = []
        for _ in range(5):  # over five seconds: the slow clients keep dribbling meanwhile
            began = time.monotonic()
            response = requests.get(f"{proxy_url}/login/", timeout=10)
            times.append(time.monotonic() - began)
            assert response.status_code == 200
            stop.wait(1)
        assert sender.is_alive()  # the slow clients were still at it when the last request was answered
        assert max(times) < 1.0, times
    finally:
        stop.set()
        for sock in sockets:
            sock.close()


def test_nginx_refuses_big_bodies_unread_and_passes_uploads_to_the_app(app_behind_nginx):
    proxy_url, _app_url = app_behind_nginx
    big = requests.post(f"{proxy_url}/login/", data=b"x" * 100_000, timeout=10)
    assert big.status_code == 413
    anonymous_upload = requests.post(
        f"{proxy_url}/api/jobs/", data=b"x" * 100_000, headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert anonymous_upload.status_code == 401  # the app's answer: the route takes files, the client no login
    upload = f"{proxy_url}/api/uploads/{'a' * 32}/"
    headers = {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    anonymous_part = requests.patch(upload, data=b"x" * 1_000_000, headers=headers, timeout=10)
    assert anonymous_part.status_code == 401  # a resumable upload's part reaches the app, which refuses it
