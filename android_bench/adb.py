"""A thin, safe layer over the ``adb`` client (Debian/Ubuntu package ``adb``, or the SDK's platform-tools).

Host-side commands are always argument lists (no host shell). ``adb shell`` takes one string that the
device's ``sh`` parses, so every command for it is built with ``shlex.join`` from an argument list: a file
named ``a b;rm -rf x.tflite`` stays one word. Older devices' adb shells (no "shell v2") always exit 0, so
``shell`` appends ``echo <marker>$?`` and reads the command's status from the output; a missing marker
means the transport failed (device unplugged, adb server gone).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

EXIT_MARKER = "__PYNET_BENCH_EXIT__="
# The marker ends the output, on a line of its own only if the command's output ended in a newline.
_EXIT_STATUS = re.compile(rf"{re.escape(EXIT_MARKER)}(\d+)\s*\Z")
INSTALL_HINT = "install it (Debian/Ubuntu: sudo apt install adb) or put Android's platform-tools on PATH"


class AdbError(Exception):
    """Something the user fixes before a run: adb missing, no device, unauthorized/offline, which device."""


class TransportError(Exception):
    """adb lost the device (or the server) during a command."""


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)
    """``product``, ``model``, ``device``, ``transport_id``, ``usb`` as listed."""


@dataclass(frozen=True)
class ShellResult:
    output: str
    exit_code: int


def find_adb() -> str:
    executable = shutil.which("adb")
    if executable is None:
        raise AdbError(f"adb not found on PATH: {INSTALL_HINT}")
    return executable


def list_devices(executable: str) -> list[DeviceEntry]:
    """The devices ``adb devices -l`` lists (this starts the adb server if needed)."""
    try:
        done = subprocess.run(
            [executable, "devices", "-l"], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        raise AdbError(
            "`adb devices -l` did not answer within 60 s: run `adb kill-server` and try again"
        ) from None
    if done.returncode != 0:
        raise AdbError(f"`adb devices -l` failed: {(done.stderr or done.stdout).strip()}")
    return parse_devices(done.stdout)


def parse_devices(text: str) -> list[DeviceEntry]:
    """``adb devices -l`` output -> entries (the header, daemon messages and blank lines skipped)."""
    entries = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("List of devices", "*", "adb server")):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        serial, state, rest = parts[0], parts[1], parts[2:]
        if state == "no" and rest[:1] == ["permissions"]:  # "no permissions (user in plugdev group; ...)"
            state = "no permissions"
        details = dict(item.split(":", 1) for item in rest if ":" in item)
        entries.append(DeviceEntry(serial, state, details))
    return entries


STATE_HINTS = {
    "unauthorized": "unlock the phone and accept the 'Allow USB debugging?' prompt, then run again",
    "offline": "reconnect the USB cable (or run `adb kill-server`), then run again",
    "no permissions": "the USB device is not accessible: add a udev rule for it (Debian: package "
    "android-sdk-platform-tools-common) or add your user to the plugdev group",
    "recovery": "reboot the phone into Android",
    "bootloader": "reboot the phone into Android",
}


def choose_device(entries: list[DeviceEntry], serial: str | None) -> DeviceEntry:
    """The device to use, or an ``AdbError`` saying what to do (``--serial`` when several are attached)."""
    if serial is not None:
        matching = [entry for entry in entries if entry.serial == serial]
        if not matching:
            listed = ", ".join(entry.serial for entry in entries) or "none"
            raise AdbError(f"--serial {serial}: no such device (adb devices -l lists: {listed})")
        entry = matching[0]
    elif not entries:
        raise AdbError("no device: connect a phone with USB debugging enabled (adb devices -l lists none)")
    elif len(entries) > 1:
        listed = ", ".join(f"{entry.serial} ({entry.state})" for entry in entries)
        raise AdbError(f"{len(entries)} devices attached: {listed}; pass --serial SERIAL")
    else:
        entry = entries[0]
    if entry.state != "device":
        hint = STATE_HINTS.get(entry.state, "check `adb devices -l`")
        raise AdbError(f"device {entry.serial} is {entry.state}: {hint}")
    return entry


class Adb:
    """adb bound to one device serial."""

    def __init__(self, executable: str, serial: str):
        self.executable = executable
        self.serial = serial

    def argv(self, *args: str) -> list[str]:
        return [self.executable, "-s", self.serial, *args]

    def call(self, *args: str, timeout: float | None = 120) -> subprocess.CompletedProcess:
        """Run ``adb -s SERIAL ARGS``; a hang past ``timeout`` is a ``TransportError``."""
        try:
            return subprocess.run(
                self.argv(*args),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            raise TransportError(f"adb {' '.join(args[:1])} timed out after {timeout:g} s") from expired

    def shell(self, command: str, timeout: float | None = 120) -> ShellResult:
        """Run ``command`` (a device-shell string; build it with ``shlex.join``) and return its output and
        exit status; ``TransportError`` when adb could not deliver it."""
        done = self.call("shell", f"{command}; echo {EXIT_MARKER}$?", timeout=timeout)
        found = _EXIT_STATUS.search(done.stdout)
        if found:
            return ShellResult("\n".join(done.stdout[: found.start()].splitlines()), int(found.group(1)))
        reason = (
            done.stderr.strip() or done.stdout.strip() or f"adb exit status {done.returncode}"
        ).splitlines()
        raise TransportError(f"adb shell failed: {reason[-1]}")

    def run(self, argv: list[str], timeout: float | None = 120) -> ShellResult:
        """Run an argument list on the device, every word quoted for the device's shell."""
        return self.shell(shlex.join(argv), timeout=timeout)

    def push(self, local: str, remote: str, timeout: float | None = 600) -> None:
        """Copy ``local`` to ``remote``; ``local`` goes absolute, so a name like ``-x.tflite`` is no option."""
        done = self.call("push", os.path.abspath(local), remote, timeout=timeout)
        if done.returncode != 0:
            reason = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise TransportError(f"adb push {local} failed: {reason[-1] if reason else done.returncode}")

    def pull(self, remote: str, local: str, timeout: float | None = 600) -> None:
        """Copy the device file ``remote`` to ``local``; ``TransportError`` naming the file otherwise."""
        done = self.call("pull", remote, os.path.abspath(local), timeout=timeout)
        if done.returncode != 0:
            reason = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise TransportError(f"adb pull {remote} failed: {reason[-1] if reason else done.returncode}")

    def remote_sha256(self, remote: str) -> str | None:
        """``sha256sum`` of a device file (toybox has it since Android 6), or None if absent/unreadable."""
        result = self.run(["sha256sum", remote], timeout=120)
        words = result.output.split()
        return words[0].lower() if result.exit_code == 0 and words and len(words[0]) == 64 else None

    def state(self) -> str | None:
        """``adb get-state`` (``device`` when usable), or None when adb no longer sees the device."""
        try:
            done = self.call("get-state", timeout=20)
        except TransportError:
            return None
        return (done.stdout.strip() or None) if done.returncode == 0 else None
