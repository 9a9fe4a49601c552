// Hides the console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // `labpipe-app configure …` writes the settings and exits without opening a window.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("configure") {
        std::process::exit(labpipe_app::configure::main(&args[1..]));
    }
    labpipe_app::run();
}
