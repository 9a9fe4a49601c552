"""Checks of the Windows installer (dist/LabPipe-<version>-x64.msi) for scripts/windows-installer.sh.

  tables MSI VERSION             the MSI's tables say what packaging/windows/LabPipe.wxs promises:
                                 per machine, three files in Program Files\\LabPipe, a Start-menu
                                 shortcut to the app, labpipe.exe's folder on the system PATH,
                                 the stable UpgradeCode with a major upgrade, the WebView2 condition
  extracted MSI DIR BUILD_DIR    msiextract's files are byte for byte the build's
  installed MSI LOG DRIVE_C      after `msiexec /i … /l*v LOG`: every File row is on disk where the
                                 Directory table and the log's resolved folders put it, with the
                                 table's size, and the shortcut is in the resolved Start menu
  removed MSI LOG DRIVE_C        after `msiexec /x`: none of it is left
  settings WIN LINUX_REREAD LINUX   the settings.json the Windows build wrote, the same file after
                                 the Linux build read and saved it, and the Linux build's own from
                                 the same flags: equal (the lab folder's path aside)
"""

import json
import os
import re
import subprocess
import sys

UPGRADE_CODE = "{1051A4A2-50F5-4FDB-971A-269121BC7A64}"
FILES = {"labpipe-app.exe", "WebView2Loader.dll", "labpipe.exe"}


def table(msi, name):
    out = subprocess.run(["msiinfo", "export", msi, name], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"msiinfo export {msi} {name} failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    cols = lines[0].split("\t")
    return [dict(zip(cols, l.split("\t"))) for l in lines[3:] if l]


def long_name(default_dir):
    """A Directory/File name column: `short|long` or just `name`."""
    return default_dir.split("|")[-1]


FAILED = []


def expect(ok, what):
    print(("  ok  " if ok else "  FAIL ") + what)
    if not ok:
        FAILED.append(what)


def tables(msi, version):
    props = {r["Property"]: r["Value"] for r in table(msi, "Property")}
    expect(props.get("ALLUSERS") == "1", "per machine (ALLUSERS=1)")
    expect(props.get("UpgradeCode") == UPGRADE_CODE, f"UpgradeCode {UPGRADE_CODE} (never changes)")
    expect(props.get("ProductVersion") == version, f"ProductVersion {version}")
    expect(props.get("ProductName") == "LabPipe" and props.get("ARPPRODUCTICON"), "product name and uninstall-entry icon")
    summary = subprocess.run(["msiinfo", "suminfo", msi], capture_output=True, text=True).stdout
    expect("Template: x64;1033" in summary, "64-bit package (summary Template x64;1033)")

    dirs = {r["Directory"]: r for r in table(msi, "Directory")}
    inst = dirs.get("INSTALLDIR", {})
    expect(inst.get("Directory_Parent") == "ProgramFiles64Folder" and long_name(inst.get("DefaultDir", "")) == "LabPipe",
           "INSTALLDIR is Program Files\\LabPipe (ProgramFiles64Folder)")
    comps = {r["Component"]: r for r in table(msi, "Component")}
    files = table(msi, "File")
    where = {long_name(f["FileName"]): comps[f["Component_"]]["Directory_"] for f in files}
    expect(set(where) == FILES and set(where.values()) == {"INSTALLDIR"},
           f"files: {', '.join(sorted(where))} in INSTALLDIR")
    app_key = [c for c in comps.values() if c["KeyPath"] in {f["File"] for f in files if long_name(f["FileName"]) == "labpipe-app.exe"}]
    expect(len(app_key) == 1 and int(app_key[0]["Attributes"]) & 256, "the app's component is 64-bit, keyed on labpipe-app.exe")

    shortcuts = table(msi, "Shortcut")
    expect(len(shortcuts) == 1 and shortcuts[0]["Directory_"] == "ProgramMenuFolder"
           and long_name(shortcuts[0]["Name"]) == "LabPipe" and shortcuts[0]["Target"] == "[INSTALLDIR]labpipe-app.exe",
           "one Start-menu shortcut 'LabPipe' -> [INSTALLDIR]labpipe-app.exe")

    cli_comp = next(f["Component_"] for f in files if long_name(f["FileName"]) == "labpipe.exe")
    env = table(msi, "Environment")
    expect(any(e["Name"] == "=-*Path" and e["Value"] == "[~];[INSTALLDIR]" and e["Component_"] == cli_comp for e in env),
           "labpipe.exe's folder appended to the system PATH, removed on uninstall (Environment =-*Path)")
    seq = {r["Action"]: int(r["Sequence"]) for r in table(msi, "InstallExecuteSequence")}
    expect({"WriteEnvironmentStrings", "RemoveEnvironmentStrings", "RemoveExistingProducts", "CreateShortcuts"} <= set(seq),
           "actions: environment, major upgrade, shortcuts")

    upgrade = table(msi, "Upgrade")
    older = [u for u in upgrade if u["UpgradeCode"] == UPGRADE_CODE and u["VersionMax"] == version and u["ActionProperty"] == "WIX_UPGRADE_DETECTED"]
    newer = [u for u in upgrade if u["UpgradeCode"] == UPGRADE_CODE and u["VersionMin"] == version and u["ActionProperty"] == "WIX_DOWNGRADE_DETECTED"]
    expect(bool(older) and bool(newer), "major upgrade: an older LabPipe is removed, a newer one stops the install")

    conds = table(msi, "LaunchCondition")
    wv2 = [c for c in conds if "WEBVIEW2_MACHINE" in c["Condition"]]
    expect(len(wv2) == 1 and "WebView2 Runtime" in wv2[0]["Description"], "launch condition: the WebView2 runtime, with what to install")
    locs = {r["Signature_"]: r for r in table(msi, "RegLocator")}
    m = locs.get("WebView2Machine", {})
    expect(m.get("Root") == "2" and m.get("Key", "").endswith("{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}") and m.get("Type") == "2",
           "WebView2 looked up in HKLM's 32-bit view (EdgeUpdate\\Clients\\{F3017226-…}, value pv)")


def extracted(msi, out_dir, build_dir):
    subprocess.run(["msiextract", "-C", out_dir, msi], check=True, capture_output=True)
    got = {}
    for root, _, names in os.walk(out_dir):
        for n in names:
            got[n] = os.path.join(root, n)
    expect(set(got) == FILES, f"msiextract gives {', '.join(sorted(got))}")
    for n in sorted(FILES & set(got)):
        same = open(got[n], "rb").read() == open(os.path.join(build_dir, n), "rb").read()
        expect(same, f"{n} in the MSI is the build's, byte for byte")


def log_props(log):
    props = {}
    for line in open(log, encoding="utf-8", errors="replace"):
        m = re.match(r"Property\(S\): (\w+) = (.*)$", line.rstrip("\r\n"))
        if m:
            props[m.group(1)] = m.group(2)
    return props


def unix(drive_c, win_path):
    if not win_path.upper().startswith("C:\\"):
        sys.exit(f"resolved folder {win_path} is not on C:")
    return os.path.join(drive_c, *[p for p in win_path[3:].split("\\") if p])


def installed(msi, log, drive_c, present=True):
    props = log_props(log)
    inst, menu = props.get("INSTALLDIR"), props.get("ProgramMenuFolder")
    if not inst or not menu:
        sys.exit(f"{log} does not name INSTALLDIR and ProgramMenuFolder (was it written with /l*v?)")
    print(f"  resolved: INSTALLDIR {inst}, ProgramMenuFolder {menu}")
    for f in table(msi, "File"):
        path = os.path.join(unix(drive_c, inst), long_name(f["FileName"]))
        if present:
            ok = os.path.isfile(path) and os.path.getsize(path) == int(f["FileSize"])
            expect(ok, f"{inst}{long_name(f['FileName'])} installed ({f['FileSize']} bytes, as the File table says)")
        else:
            expect(not os.path.exists(path), f"{inst}{long_name(f['FileName'])} removed")
    for s in table(msi, "Shortcut"):
        lnk = os.path.join(unix(drive_c, menu), long_name(s["Name"]) + ".lnk")
        if present:
            data = open(lnk, "rb").read() if os.path.isfile(lnk) else b""
            points = b"labpipe-app.exe" in data or "labpipe-app.exe".encode("utf-16-le") in data
            expect(points, f"{menu}{long_name(s['Name'])}.lnk points at labpipe-app.exe")
        else:
            expect(not os.path.exists(lnk), f"{menu}{long_name(s['Name'])}.lnk removed")


def settings(win, reread, linux):
    a, b, c = (json.load(open(p, encoding="utf-8")) for p in (win, reread, linux))
    expect(a == b, f"the Linux build reads the Windows build's settings.json back equal ({len(a)} fields)")
    if a != b:
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                print(f"       {k}: windows {a.get(k)!r}, linux {b.get(k)!r}")
    a2 = {k: v for k, v in a.items() if k != "lab_folder"}
    c2 = {k: v for k, v in c.items() if k != "lab_folder"}
    expect(a2 == c2, "the same flags give the same settings on Windows and Linux (lab folder aside)")
    if a2 != c2:
        for k in sorted(set(a2) | set(c2)):
            if a2.get(k) != c2.get(k):
                print(f"       {k}: windows {a2.get(k)!r}, linux {c2.get(k)!r}")
    expect(bool(re.match(r"^[A-Za-z]:\\", a.get("lab_folder") or "")), f"the Windows lab folder is a Windows path ({a.get('lab_folder')})")


def main():
    cmd, *args = sys.argv[1:] or ["-h"]
    if cmd == "tables":
        tables(*args)
    elif cmd == "extracted":
        extracted(*args)
    elif cmd == "installed":
        installed(*args)
    elif cmd == "removed":
        installed(*args, present=False)
    elif cmd == "settings":
        settings(*args)
    else:
        sys.exit(__doc__)
    if FAILED:
        sys.exit(f"{len(FAILED)} check(s) failed")


if __name__ == "__main__":
    main()
