// Hides the console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // `labpipe-app configure …` writes the settings and exits without opening a window.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("configure") {
        attach_parent_console();
        std::process::exit(labpipe_app::configure::main(&args[1..]));
    }
    labpipe_app::run();
}

/// A release build on Windows is a GUI program without a console of its own, so `configure`'s
/// output would vanish: it writes to the console of the prompt or script that started it instead.
/// Output redirected to a file or a pipe (`| Out-Host`) already has its handles and is left alone.
#[cfg(all(windows, not(debug_assertions)))]
fn attach_parent_console() {
    const ATTACH_PARENT_PROCESS: u32 = u32::MAX;
    const STD_OUTPUT_HANDLE: u32 = -11i32 as u32;
    #[link(name = "kernel32")]
    extern "system" {
        fn AttachConsole(process_id: u32) -> i32;
        fn GetStdHandle(std_handle: u32) -> *mut std::ffi::c_void;
    }
    // SAFETY: both are plain Win32 calls without pointers in; a failed attach (no parent console)
    // only means the output is not shown, and the exit code still says how it went.
    unsafe {
        let out = GetStdHandle(STD_OUTPUT_HANDLE);
        if out.is_null() || out as isize == -1 {
            AttachConsole(ATTACH_PARENT_PROCESS);
        }
    }
}

#[cfg(not(all(windows, not(debug_assertions))))]
fn attach_parent_console() {}
