//! An app bundle: one gzipped tarball with the manifest at its root
//! (`app.toml` or `spin.toml`), its components under `wasm/`, and the files
//! it serves or reads (static files, schema, seed, migrations, Spin `files`).
//!
//! [`pack`] makes one from an app on disk, rewriting the manifest's paths to
//! the bundle's own so that it no longer depends on where it was built (a
//! component under `../target/` becomes `wasm/NAME.wasm`; build commands
//! go, the bundle holds what they made). [`unpack`] is the platform's side:
//! it refuses anything but plain files and folders below the bundle's root,
//! and stops at the size and count ceilings.

use std::io::Read;
use std::path::{Component as PathPart, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::app::AnyManifest;
use crate::spin::manifest::FileMount;

/// The manifest names a bundle may have at its root.
pub const MANIFEST_NAMES: [&str; 2] = ["app.toml", "spin.toml"];

/// What an unpacked bundle may hold at most.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    pub max_bytes: u64,
    pub max_files: usize,
}

/// A bundle of the app whose manifest is `file` (built already).
pub fn pack(file: &Path) -> Result<Vec<u8>> {
    let manifest = AnyManifest::load(file)?;
    let text = std::fs::read_to_string(file)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not TOML", file.display()))?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let base = manifest.base_dir().to_path_buf();
    let name = match &manifest {
        AnyManifest::Pure(m) => {
            for (id, c) in &m.components {
                let at = format!("wasm/{id}.wasm");
                files.push((c.source.clone(), at.clone()));
                let entry = &mut doc["components"][id.as_str()];
                entry["source"] = toml_edit::value(at);
                if let Some(t) = entry.as_table_like_mut() {
                    t.remove("build");
                }
            }
            if let Some(st) = &m.static_files {
                add_dir(&st.dir, "static", &mut files)?;
                doc["static"]["dir"] = toml_edit::value("static");
            }
            let db = &m.database;
            for (key, file) in [("schema", &db.schema), ("seed", &db.seed)] {
                let Some(file) = file else { continue };
                let at = format!("db/{key}.sql");
                files.push((file.clone(), at.clone()));
                doc["database"][key] = toml_edit::value(at);
                // Its PostgreSQL variant, beside it, for a platform on PostgreSQL.
                let pg = file.with_extension("postgres.sql");
                if pg.is_file() {
                    files.push((pg, format!("db/{key}.postgres.sql")));
                }
            }
            if let Some(dir) = &db.migrations {
                add_dir(dir, "db/migrations", &mut files)?;
                doc["database"]["migrations"] = toml_edit::value("db/migrations");
            }
            // Where the data lives is the platform's to decide.
            if let Some(t) = doc.get_mut("database").and_then(|d| d.as_table_like_mut()) {
                t.remove("path");
                t.remove("url");
            }
            "app.toml"
        }
        AnyManifest::Spin(m) => {
            for c in m.components.values() {
                let at = format!("wasm/{}.wasm", c.id);
                files.push((c.source.clone(), at.clone()));
                let entry = &mut doc["component"][c.id.as_str()];
                entry["source"] = toml_edit::value(at);
                if let Some(t) = entry.as_table_like_mut() {
                    t.remove("build");
                }
                for d in &c.dependencies {
                    let key = d.name.to_string();
                    let at = format!("wasm/{}.deps/{}.wasm", c.id, sanitize(&key));
                    files.push((d.path.clone(), at.clone()));
                    let dep = &mut doc["component"][c.id.as_str()]["dependencies"][key.as_str()];
                    match dep.as_table_like_mut() {
                        Some(t) => {
                            t.insert("path", toml_edit::value(at));
                        }
                        None => bail!(
                            "{}: component {:?} dependency {key:?} is not a local `path` source; bundles hold local files only",
                            file.display(),
                            c.id
                        ),
                    }
                }
                for mount in &c.files {
                    let source: &str = match mount {
                        FileMount::Pattern(p) => p,
                        FileMount::Placement { source, .. } => source,
                    };
                    add_mounted(&base, source, &mut files).with_context(|| {
                        format!(
                            "{}: component {:?} files entry {source:?}",
                            file.display(),
                            c.id
                        )
                    })?;
                }
            }
            "spin.toml"
        }
    };
    files.sort_by(|a, b| a.1.cmp(&b.1));
    files.dedup_by(|a, b| a.1 == b.1);
    let manifest = doc.to_string();
    let mut contents = Vec::with_capacity(files.len());
    for (from, _) in &files {
        contents.push(std::fs::read(from).with_context(|| {
            format!(
                "cannot read {} for the bundle; build the app first (`nebula build`)",
                from.display()
            )
        })?);
    }
    let mut entries: Vec<(&str, &[u8])> = vec![(name, manifest.as_bytes())];
    entries.extend(
        files
            .iter()
            .zip(&contents)
            .map(|((_, at), b)| (at.as_str(), &b[..])),
    );
    gz_tar(&entries)
}

/// A gzipped tarball of `entries` (path in the bundle, bytes), in order.
pub fn gz_tar(entries: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    tar.mode(tar::HeaderMode::Deterministic);
    for (at, bytes) in entries {
        append(&mut tar, at, bytes)?;
    }
    Ok(tar.into_inner()?.finish()?)
}

fn append<W: std::io::Write>(tar: &mut tar::Builder<W>, at: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, at, bytes)?;
    Ok(())
}

/// A dependency key (`package:name/interface`) as a file name.
pub(crate) fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn add_dir(dir: &Path, at: &str, files: &mut Vec<(PathBuf, String)>) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry?;
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(dir)?;
            files.push((entry.path().to_path_buf(), format!("{at}/{}", slashed(rel))));
        }
    }
    Ok(())
}

/// A Spin `files` source (a path or glob relative to the manifest's
/// folder): what it names, at the same relative path in the bundle.
fn add_mounted(base: &Path, pattern: &str, files: &mut Vec<(PathBuf, String)>) -> Result<()> {
    if Path::new(pattern).is_absolute()
        || Path::new(pattern)
            .components()
            .any(|p| p == PathPart::ParentDir)
    {
        bail!("lies outside the app's folder; a bundle holds the app's folder only");
    }
    let full = base.join(pattern);
    let matched: Vec<PathBuf> = glob::glob(&full.to_string_lossy())?
        .filter_map(|p| p.ok())
        .collect();
    for path in matched {
        let rel = path.strip_prefix(base)?.to_path_buf();
        if path.is_dir() {
            add_dir(&path, &slashed(&rel), files)?;
        } else if path.is_file() {
            files.push((path.clone(), slashed(&rel)));
        }
    }
    Ok(())
}

fn slashed(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Unpacks `bundle` into `dest` (which must not exist yet) and returns the
/// manifest's path in it.
pub fn unpack(bundle: &[u8], dest: &Path, limits: UnpackLimits) -> Result<PathBuf> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bundle));
    let (mut bytes, mut count) = (0u64, 0usize);
    for entry in archive
        .entries()
        .context("the bundle is not a gzipped tarball")?
    {
        let mut entry = entry.context("the bundle is not a gzipped tarball (or is cut short)")?;
        let path = entry.path()?.into_owned();
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            bail!(
                "the bundle's entry {} is a {kind:?}; bundles hold plain files and folders only",
                path.display()
            );
        }
        if path.is_absolute()
            || path
                .components()
                .any(|p| !matches!(p, PathPart::Normal(_) | PathPart::CurDir))
        {
            bail!(
                "the bundle's entry {} leaves the bundle's folder",
                path.display()
            );
        }
        count += 1;
        if count > limits.max_files {
            bail!("the bundle holds more than {} files", limits.max_files);
        }
        let at = dest.join(&path);
        if kind.is_dir() {
            std::fs::create_dir_all(&at)?;
            continue;
        }
        bytes += entry.size();
        if bytes > limits.max_bytes {
            bail!(
                "the bundle unpacks to more than {} bytes, this platform's ceiling",
                limits.max_bytes
            );
        }
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Counted by what is read, not by what the header claims.
        let mut out = std::fs::File::create(&at)?;
        let copied = std::io::copy(&mut (&mut entry).take(limits.max_bytes + 1), &mut out)?;
        if copied > entry.size() {
            bail!(
                "the bundle's entry {} is longer than its header says",
                path.display()
            );
        }
    }
    for name in MANIFEST_NAMES {
        if dest.join(name).is_file() {
            return Ok(dest.join(name));
        }
    }
    bail!(
        "the bundle has no manifest at its root ({}); make one with `nebula deploy`",
        MANIFEST_NAMES.join(" or ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        super::gz_tar(entries).unwrap()
    }

    const LIMITS: UnpackLimits = UnpackLimits {
        max_bytes: 1 << 20,
        max_files: 10,
    };

    #[test]
    fn a_bundle_unpacks_to_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = gz_tar(&[("app.toml", b"[app]\n"), ("wasm/a.wasm", b"\0asm")]);
        let m = unpack(&bundle, &dir.path().join("v1"), LIMITS).unwrap();
        assert_eq!(m, dir.path().join("v1/app.toml"));
        assert_eq!(
            std::fs::read(dir.path().join("v1/wasm/a.wasm")).unwrap(),
            b"\0asm"
        );
    }

    #[test]
    fn entries_that_leave_the_folder_or_exceed_the_ceilings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // tar's builder refuses `..` itself; write the name into the header.
        let mut raw = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../escape.sh");
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        raw.append(&h, &b"x"[..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw.into_inner().unwrap()).unwrap();
        let err = unpack(&gz.finish().unwrap(), &dir.path().join("a"), LIMITS).unwrap_err();
        assert!(
            format!("{err:#}").contains("leaves the bundle's folder"),
            "{err:#}"
        );
        assert!(!dir.path().join("escape.sh").exists());

        let big = vec![0u8; 2 << 20];
        let err = unpack(
            &gz_tar(&[("app.toml", &big)]),
            &dir.path().join("b"),
            LIMITS,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("more than 1048576 bytes"),
            "{err:#}"
        );

        let many: Vec<(String, &[u8])> = (0..11).map(|i| (format!("f{i}"), &b"x"[..])).collect();
        let refs: Vec<(&str, &[u8])> = many.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        let err = unpack(&gz_tar(&refs), &dir.path().join("c"), LIMITS).unwrap_err();
        assert!(format!("{err:#}").contains("more than 10 files"), "{err:#}");

        let err = unpack(b"not a bundle", &dir.path().join("d"), LIMITS).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a gzipped tarball"),
            "{err:#}"
        );

        let err = unpack(&gz_tar(&[("x.txt", b"x")]), &dir.path().join("e"), LIMITS).unwrap_err();
        assert!(
            format!("{err:#}").contains("no manifest at its root"),
            "{err:#}"
        );
    }
}
