"""What a Windows exe needs and carries, read with mingw's objdump (`objdump -p`).

  imports EXE... [--beside DLL...]   every imported DLL is a Windows system DLL or one of the
                                     DLLs shipped beside the exe; fails naming any other
  resources EXE --version V          the exe carries an icon, a manifest and a version resource
                                     whose strings name version V

Used by scripts/package-windows.sh (imports, before an MSI is made) and
scripts/windows-installer.sh (both, on the installed files).
"""

import argparse
import re
import subprocess
import sys

OBJDUMP = "x86_64-w64-mingw32-objdump"

# DLLs every Windows 10 (1809+) and 11 installation has in System32. Anything else must ship in
# the installer. Kept to names the builds import today and their close kin: a new import from a
# new dependency shows up as a failure here and is added only after checking it is part of Windows.
SYSTEM_DLLS = {
    "advapi32.dll", "bcrypt.dll", "bcryptprimitives.dll", "combase.dll", "comctl32.dll", "comdlg32.dll",
    "crypt32.dll", "d2d1.dll", "d3d11.dll", "dbghelp.dll", "dcomp.dll", "dwmapi.dll",
    "dwrite.dll", "dxgi.dll", "gdi32.dll", "gdiplus.dll", "imm32.dll", "iphlpapi.dll",
    "kernel32.dll", "msimg32.dll", "msvcrt.dll", "ncrypt.dll", "ntdll.dll", "ole32.dll",
    "oleaut32.dll", "powrprof.dll", "propsys.dll", "rpcrt4.dll", "secur32.dll", "setupapi.dll",
    "shcore.dll", "shell32.dll", "shlwapi.dll", "user32.dll", "userenv.dll", "uxtheme.dll",
    "version.dll", "windowscodecs.dll", "winhttp.dll", "winmm.dll", "winspool.drv",
    "ws2_32.dll", "wtsapi32.dll", "cfgmgr32.dll", "credui.dll", "netapi32.dll", "mpr.dll",
}
# API sets (api-ms-win-core-synch-l1-2-0.dll, …) are resolved by the Windows loader itself.
API_SET = re.compile(r"^(api|ext)-ms-win-[a-z0-9-]+\.dll$")


def objdump(exe):
    out = subprocess.run([OBJDUMP, "-p", exe], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{OBJDUMP} -p {exe} failed: {out.stderr.strip()}")
    return out.stdout


def imports(exes, beside):
    shipped = {d.lower() for d in beside}
    bad = 0
    for exe in exes:
        dlls = sorted({m.lower() for m in re.findall(r"DLL Name: (\S+)", objdump(exe))})
        if not dlls:
            print(f"{exe}: no imported DLLs found (is it a Windows exe?)")
            bad += 1
            continue
        other = [d for d in dlls if d not in SYSTEM_DLLS and not API_SET.match(d) and d not in shipped]
        mine = [d for d in dlls if d in shipped]
        print(f"{exe.rsplit('/', 1)[-1]}: {len(dlls)} DLLs imported, "
              f"{len(dlls) - len(mine) - len(other)} of Windows, shipped beside it: {', '.join(mine) or 'none'}")
        for d in other:
            print(f"  {d}: neither a Windows system DLL nor shipped beside the exe  <- add it to the "
                  "installer, link it statically, or (if it is part of Windows) to SYSTEM_DLLS in scripts/windows_pe.py")
            bad += 1
    return bad == 0


def resources(exe, version):
    text = objdump(exe)
    # objdump lists the resource directory as a tree; the first level (three spaces after the
    # offset) holds the resource types: "010   Entry: ID: 0x000003, Value: …".
    listed = text.split("The .rsrc Resource Directory section", 1)[-1] if ".rsrc Resource" in text else ""
    ids = {int(t, 16) for t in re.findall(r"^[0-9a-f]+ {3}Entry: ID: (0x[0-9a-f]+)", listed, re.M)}
    want = {3: "icon", 14: "group icon", 16: "version", 24: "manifest"}
    data = open(exe, "rb").read()
    ok = True
    for rid, name in want.items():
        if rid not in ids:
            print(f"{exe}: no {name} resource (type {rid}) in .rsrc")
            ok = False
    for key in ("FileVersion", "ProductVersion", "ProductName"):
        if key.encode("utf-16-le") not in data:
            print(f"{exe}: the version resource has no {key}")
            ok = False
    if version.encode("utf-16-le") not in data:
        print(f"{exe}: the version resource does not name version {version}")
        ok = False
    if ok:
        print(f"{exe.rsplit('/', 1)[-1]}: icon, manifest and version resource ({version}) present")
    return ok


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("imports")
    i.add_argument("exe", nargs="+")
    i.add_argument("--beside", nargs="*", default=[])
    r = sub.add_parser("resources")
    r.add_argument("exe")
    r.add_argument("--version", required=True)
    a = p.parse_args()
    ok = imports(a.exe, a.beside) if a.cmd == "imports" else resources(a.exe, a.version)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
