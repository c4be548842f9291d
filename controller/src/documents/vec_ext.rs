//! Registers the `sqlite-vec` extension (the `vec0` virtual table) with the bundled SQLite,
//! once per process, for every connection opened afterwards.
//!
//! Unsafe because SQLite's C API takes the extension's entry point as a function pointer:
//! `sqlite-vec` declares `sqlite3_vec_init` without arguments, SQLite calls it with the
//! standard `(db, error message, API routines)` signature. This is the registration the
//! `sqlite-vec` crate documents; nothing else in the store is unsafe.
#![allow(unsafe_code)]

use std::os::raw::{c_char, c_int};
use std::sync::Once;

use rusqlite::ffi;

type EntryPoint = unsafe extern "C" fn(
    *mut ffi::sqlite3,
    *mut *mut c_char,
    *const ffi::sqlite3_api_routines,
) -> c_int;

static REGISTER: Once = Once::new();

/// Makes `vec0` available on every connection opened from now on.
pub fn register() {
    REGISTER.call_once(|| {
        // SAFETY: `sqlite3_vec_init` is sqlite-vec's extension entry point, compiled with
        // SQLITE_CORE against the bundled SQLite; its real C signature is `EntryPoint`.
        // `sqlite3_auto_extension` only stores the pointer and calls it on each new
        // connection.
        unsafe {
            let entry: EntryPoint = std::mem::transmute::<*const (), EntryPoint>(
                sqlite_vec::sqlite3_vec_init as *const (),
            );
            ffi::sqlite3_auto_extension(Some(entry));
        }
    });
}
