//! The toolchains `nebula build` installs into a project when a build command
//! needs one, so that a fresh checkout builds with nothing but `python3` and
//! `node`/`npm` on the machine:
//!
//! - a command whose program is `componentize-py` runs with a virtual
//!   environment at `.nebula/toolchains/python` (beside the manifest) first on
//!   `PATH`, created with `python3 -m venv` and holding [`COMPONENTIZE_PY`], or
//!   what the app's `requirements.txt` pins (in the build's `workdir` or beside
//!   the manifest, as Spin's Python template has one: `spin-sdk` and
//!   `componentize-py`);
//! - a command whose program is `jco` runs with `node_modules/.bin` first on
//!   `PATH`, installed by `npm ci` (or `npm install` without a lock file) from
//!   the nearest `package.json` at or above the build's `workdir`. Without one,
//!   a `package.json` pinning [`JCO`] and [`COMPONENTIZE_JS`] is written beside
//!   the manifest.
//!
//! The versions are pinned: a component builds the same way on every machine,
//! and a pin that changes reinstalls.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

/// What the Python virtual environment holds.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The JavaScript toolchain a generated `package.json` pins. jco 1.35.0 cannot
/// read a WIT folder given as a path (its bundled WASI shim has no preopens).
pub const JCO: &str = "1.34.0";
pub const COMPONENTIZE_JS: &str = "0.22.0";

/// Where the Python toolchain lives, relative to the manifest's folder.
pub const PYTHON_VENV: &str = ".nebula/toolchains/python";
/// Records which pin the virtual environment was installed with.
const PYTHON_PIN_FILE: &str = "nebula-installed.txt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toolchain {
    Python,
    JavaScript,
}

impl Toolchain {
    /// The toolchain a build command needs, judged by its program (the first
    /// word that is not a `VAR=value` assignment).
    pub fn for_command(command: &str) -> Option<Toolchain> {
        let program = command.split_whitespace().find(|w| !is_assignment(w))?;
        match Path::new(program).file_name()?.to_str()? {
            "componentize-py" => Some(Toolchain::Python),
            "jco" => Some(Toolchain::JavaScript),
            _ => None,
        }
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// What a build command's process gets: folders first on `PATH`, and
/// variables to set.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    pub path_first: Vec<PathBuf>,
    pub vars: Vec<(String, OsString)>,
}

impl BuildEnv {
    /// Applies this environment to `cmd`.
    pub fn apply(&self, cmd: &mut Command) -> Result<()> {
        if self.path_first.is_empty() && self.vars.is_empty() {
            return Ok(());
        }
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            self.path_first
                .iter()
                .cloned()
                .chain(std::env::split_paths(&inherited)),
        )
        .context("a toolchain folder cannot be put on PATH (does its path contain ':'?)")?;
        cmd.env("PATH", path);
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        Ok(())
    }
}

/// Makes sure `toolchain` is installed for a build in `workdir` of the app
/// whose manifest is in `project`, and says how to run its commands.
pub fn prepare(toolchain: Toolchain, project: &Path, workdir: &Path) -> Result<BuildEnv> {
    match toolchain {
        Toolchain::Python => prepare_python(project, workdir),
        Toolchain::JavaScript => prepare_javascript(project, workdir),
    }
}

/// The `requirements.txt` a Python build installs: the one in its workdir,
/// else the one beside the manifest.
fn requirements_file(project: &Path, workdir: &Path) -> Option<PathBuf> {
    [workdir, project]
        .iter()
        .map(|d| absolute(d).join("requirements.txt"))
        .find(|f| f.is_file())
}

/// Whether a requirements file names componentize-py (then its pin wins
/// over [`COMPONENTIZE_PY`]: pip refuses two pins of one package).
fn requires_componentize_py(requirements: &str) -> bool {
    requirements.lines().any(|line| {
        let name = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .next()
            .unwrap_or("");
        name.to_ascii_lowercase().replace(['_', '.'], "-") == "componentize-py"
    })
}

/// What `pip install` is given: [`COMPONENTIZE_PY`] unless the requirements
/// pin componentize-py themselves, and `-r FILE` when there is one.
fn pip_arguments(requirements: Option<(&Path, &str)>) -> Vec<OsString> {
    let mut args = Vec::new();
    if !requirements.is_some_and(|(_, text)| requires_componentize_py(text)) {
        args.push(COMPONENTIZE_PY.into());
    }
    if let Some((file, _)) = requirements {
        args.push("-r".into());
        args.push(file.as_os_str().to_owned());
    }
    args
}

fn prepare_python(project: &Path, workdir: &Path) -> Result<BuildEnv> {
    // Absolute: the build command runs in its own workdir.
    let venv = absolute(project).join(PYTHON_VENV);
    let bin = venv.join("bin");
    let pin_file = venv.join(PYTHON_PIN_FILE);
    let installed = std::fs::read_to_string(&pin_file).unwrap_or_default();
    let requirements = match requirements_file(project, workdir) {
        Some(f) => {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            Some((f, text))
        }
        None => None,
    };
    let requirements = requirements
        .as_ref()
        .map(|(f, t)| (f.as_path(), t.as_str()));
    let pip_args = pip_arguments(requirements);
    // The pin file records what was installed: the arguments and the
    // requirements' text, so that editing either reinstalls.
    let pin = format!(
        "{}\n{}",
        pip_args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        requirements.map_or("", |(_, t)| t)
    );
    if !(bin.join("componentize-py").exists() && installed.trim() == pin.trim()) {
        if !bin.join("python").exists() {
            eprintln!(
                "installing the Python toolchain: python3 -m venv {}",
                venv.display()
            );
            let out = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .output();
            match out {
                Err(e) if e.kind() == ErrorKind::NotFound => bail!(
                    "componentize-py builds need python3 (3.9 or newer) with its venv module, and python3 is not on PATH; install it (Debian/Ubuntu: `apt-get install python3 python3-venv`) and run the build again"
                ),
                Err(e) => bail!("cannot run python3 to create {}: {e}", venv.display()),
                Ok(o) if !o.status.success() => {
                    // A half-made environment would be taken for a working one.
                    let _ = std::fs::remove_dir_all(&venv);
                    bail!(
                        "`python3 -m venv {}` failed ({}): {}\ncomponentize-py builds need Python's venv module with pip (Debian/Ubuntu: `apt-get install python3-venv`)",
                        venv.display(),
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    )
                }
                Ok(_) => {}
            }
        }
        let shown = pip_args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("installing {shown} into {}", venv.display());
        let status = Command::new(bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(&pip_args)
            .stdout(std::io::stderr())
            .status()
            .with_context(|| format!("cannot run {}", bin.join("python").display()))?;
        if !status.success() {
            bail!(
                "`pip install {shown}` into {} failed ({status}); check that PyPI is reachable (or a pip index is configured){}, then run the build again",
                venv.display(),
                if requirements.is_some() { " and that requirements.txt names packages and versions that exist" } else { "" }
            );
        }
        if !bin.join("componentize-py").exists() {
            bail!(
                "`pip install {shown}` into {} did not install componentize-py; add `componentize-py == {}` to requirements.txt",
                venv.display(),
                COMPONENTIZE_PY.trim_start_matches("componentize-py==")
            );
        }
        std::fs::write(&pin_file, &pin)
            .with_context(|| format!("cannot write {}", pin_file.display()))?;
    }
    Ok(BuildEnv {
        path_first: vec![bin],
        // What `activate` sets; componentize-py also looks in the
        // environment's site-packages for the app's dependencies.
        vars: vec![("VIRTUAL_ENV".into(), venv.into_os_string())],
    })
}

fn prepare_javascript(project: &Path, workdir: &Path) -> Result<BuildEnv> {
    let dir = match package_dir(project, workdir) {
        Some(dir) => dir,
        None => {
            let file = project.join("package.json");
            eprintln!(
                "writing {} (jco {JCO}, componentize-js {COMPONENTIZE_JS}) for the JavaScript toolchain",
                file.display()
            );
            std::fs::write(&file, default_package_json())
                .with_context(|| format!("cannot write {}", file.display()))?;
            // Absolute, like the one found: the build runs in its own workdir.
            absolute(project)
        }
    };
    let bin = dir.join("node_modules").join(".bin");
    if needs_npm_install(&dir) {
        require_node()?;
        let ci = dir.join("package-lock.json").exists();
        let verb = if ci { "ci" } else { "install" };
        eprintln!(
            "installing the JavaScript toolchain: npm {verb} in {}",
            dir.display()
        );
        let status = Command::new("npm")
            .args([verb, "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(std::io::stderr())
            .status();
        match status {
            Err(e) => bail!("cannot run npm in {}: {e}", dir.display()),
            Ok(s) if !s.success() => bail!(
                "`npm {verb}` in {} failed ({s}); check that the npm registry is reachable and that package.json{} is valid, then run the build again",
                dir.display(),
                if ci { " and package-lock.json agree (`npm install` updates the lock)" } else { "" }
            ),
            Ok(_) => {}
        }
    }
    if !bin.join("jco").exists() {
        bail!(
            "{} does not install jco: add \"@bytecodealliance/jco\": \"{JCO}\" and \"@bytecodealliance/componentize-js\": \"{COMPONENTIZE_JS}\" to its devDependencies",
            dir.join("package.json").display()
        );
    }
    Ok(BuildEnv {
        path_first: vec![bin],
        vars: vec![],
    })
}

/// The folder of the nearest `package.json` at or above `workdir`, looking no
/// higher than `project` when `workdir` is inside it (as npm itself looks).
fn package_dir(project: &Path, workdir: &Path) -> Option<PathBuf> {
    let project = absolute(project);
    let workdir = absolute(workdir);
    let mut dir = Some(workdir.as_path());
    while let Some(d) = dir {
        if d.join("package.json").is_file() {
            return Some(d.to_path_buf());
        }
        if d == project {
            return None;
        }
        dir = d.parent();
    }
    None
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Whether `node_modules` is missing or older than what should be in it: npm
/// writes `node_modules/.package-lock.json` at the end of every install.
fn needs_npm_install(dir: &Path) -> bool {
    let Some(installed) = mtime(&dir.join("node_modules").join(".package-lock.json")) else {
        return true;
    };
    ["package.json", "package-lock.json"]
        .iter()
        .filter_map(|f| mtime(&dir.join(f)))
        .any(|t| t > installed)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn require_node() -> Result<()> {
    const INSTALL: &str = "jco builds need Node.js 18 or newer with npm; install them (Debian/Ubuntu: `apt-get install nodejs npm`, or from nodejs.org) and run the build again";
    for program in ["node", "npm"] {
        match Command::new(program).arg("--version").output() {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("{program} is not on PATH: {INSTALL}")
            }
            Err(e) => bail!("cannot run {program}: {e}; {INSTALL}"),
            Ok(o) if !o.status.success() => bail!("`{program} --version` failed: {INSTALL}"),
            Ok(o) if program == "node" => {
                let v = String::from_utf8_lossy(&o.stdout);
                let major = v
                    .trim()
                    .trim_start_matches('v')
                    .split('.')
                    .next()
                    .and_then(|m| m.parse::<u32>().ok());
                if major.is_some_and(|m| m < 18) {
                    bail!("node is {}: {INSTALL}", v.trim());
                }
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn default_package_json() -> String {
    format!(
        r#"{{
  "private": true,
  "description": "The JavaScript toolchain `nebula build` uses for jco components.",
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}",
    "@bytecodealliance/jco": "{JCO}"
  }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_picks_the_toolchain() {
        use Toolchain::*;
        let cases = [
            (
                "componentize-py -d ../wit -w pure componentize app -o x.wasm",
                Some(Python),
            ),
            ("  componentize-py componentize app", Some(Python)),
            (
                "PYTHONHASHSEED=0 componentize-py componentize app",
                Some(Python),
            ),
            (
                "jco componentize app.js -w ../wit -o x.wasm",
                Some(JavaScript),
            ),
            (
                "node_modules/.bin/jco componentize app.js",
                Some(JavaScript),
            ),
            (
                "cargo build --release --target wasm32-wasip2 -p hello",
                None,
            ),
            ("npx jco componentize app.js", None),
            ("make jco", None),
            ("", None),
        ];
        for (command, want) in cases {
            assert_eq!(Toolchain::for_command(command), want, "{command}");
        }
    }

    #[test]
    fn requirements_decide_the_componentize_py_pin() {
        for (text, names_it) in [
            ("spin-sdk == 5.0.0\ncomponentize-py == 0.25.1\n", true),
            ("componentize_py>=0.17", true),
            ("Componentize-Py", true),
            (
                "spin-sdk == 5.0.0\n# componentize-py comes from nebula\n",
                false,
            ),
            ("componentize-py-extras == 1.0", false),
            ("", false),
        ] {
            assert_eq!(requires_componentize_py(text), names_it, "{text:?}");
        }
        let file = Path::new("/app/requirements.txt");
        let args = |r| {
            pip_arguments(r)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(args(None), [COMPONENTIZE_PY]);
        assert_eq!(
            args(Some((
                file,
                "spin-sdk == 5.0.0\ncomponentize-py == 0.25.1\n"
            ))),
            ["-r", "/app/requirements.txt"]
        );
        assert_eq!(
            args(Some((file, "spin-sdk == 5.0.0\n"))),
            [COMPONENTIZE_PY, "-r", "/app/requirements.txt"]
        );
    }

    #[test]
    fn requirements_in_the_workdir_come_before_the_manifests() {
        let root = tempfile::tempdir().unwrap();
        let workdir = root.path().join("src");
        std::fs::create_dir(&workdir).unwrap();
        assert_eq!(requirements_file(root.path(), &workdir), None);
        std::fs::write(root.path().join("requirements.txt"), "a\n").unwrap();
        assert_eq!(
            requirements_file(root.path(), &workdir),
            Some(absolute(root.path()).join("requirements.txt"))
        );
        std::fs::write(workdir.join("requirements.txt"), "b\n").unwrap();
        assert_eq!(
            requirements_file(root.path(), &workdir),
            Some(absolute(&workdir).join("requirements.txt"))
        );
    }

    #[test]
    fn package_json_is_looked_for_upwards_but_not_above_the_project() {
        let root = tempfile::tempdir().unwrap();
        let project = root.path().join("app");
        let workdir = project.join("guests/search");
        std::fs::create_dir_all(&workdir).unwrap();
        // Above the project: not the project's.
        std::fs::write(root.path().join("package.json"), "{}").unwrap();
        assert_eq!(package_dir(&project, &workdir), None);

        std::fs::write(project.join("package.json"), "{}").unwrap();
        assert_eq!(package_dir(&project, &workdir), Some(absolute(&project)));

        std::fs::write(workdir.join("package.json"), "{}").unwrap();
        assert_eq!(package_dir(&project, &workdir), Some(absolute(&workdir)));
    }

    #[test]
    fn node_modules_older_than_the_lock_is_reinstalled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert!(needs_npm_install(dir.path()), "no node_modules");
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        let marker = dir.path().join("node_modules/.package-lock.json");
        std::fs::write(&marker, "{}").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&marker)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!needs_npm_install(dir.path()));
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("package.json"))
            .unwrap()
            .set_modified(later + std::time::Duration::from_secs(60))
            .unwrap();
        assert!(needs_npm_install(dir.path()), "package.json changed");
    }

    #[test]
    fn a_generated_package_json_pins_the_toolchain() {
        let v: serde_json::Value = serde_json::from_str(&default_package_json()).unwrap();
        assert_eq!(v["devDependencies"]["@bytecodealliance/jco"], JCO);
        assert_eq!(
            v["devDependencies"]["@bytecodealliance/componentize-js"],
            COMPONENTIZE_JS
        );
    }
}
