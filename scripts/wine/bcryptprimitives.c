/*
 * bcryptprimitives.dll for Wine 8.0 (Debian 12), used only by scripts/cross-windows.sh.
 *
 * Rust's standard library (1.78 and later) takes its random numbers from ProcessPrng in
 * bcryptprimitives.dll, which every Windows 10 and 11 has. Wine added the DLL after 8.0, so on
 * Debian 12 every Rust program fails to start under Wine ("bcryptprimitives.dll not found",
 * status c0000135). This one function fills the buffer from the system RNG through bcrypt.dll,
 * as Windows' own ProcessPrng does; it goes into the test's Wine prefix, never next to a
 * program shipped to a lab.
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
