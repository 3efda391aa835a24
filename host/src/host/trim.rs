//! Giving memory back while idle: free heap pages to the OS, and this
//! executable's clean code pages to the file cache.

/// Returns freed heap pages to the OS (glibc keeps them otherwise) and asks
/// the kernel to reclaim this executable's clean code pages: after a trim
/// most of the resident memory is code that the next request may not need,
/// and it is paged back in from the file cache on demand.
pub fn release_free_heap(page_out_code: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc is not using.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    if page_out_code {
        page_out_own_code();
    }
    #[cfg(not(target_os = "linux"))]
    let _ = page_out_code;
}

#[cfg(target_os = "linux")]
fn page_out_own_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("");
        // Only read-only mappings of our own file: code and constants, never
        // data that was written (those pages would be swapped, not dropped).
        if path != exe.to_string_lossy() || perms.contains('w') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        // SAFETY: advisory only; MADV_PAGEOUT on clean file-backed pages drops
        // them from memory and they fault back in from the file when used.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
}
