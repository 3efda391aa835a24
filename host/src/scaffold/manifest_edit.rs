//! Adds a component and its route to manifest text with `toml_edit`, so the
//! user's comments, order and layout stay as they were.

use anyhow::{anyhow, Result};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::Lang;

pub struct Entry<'a> {
    pub name: &'a str,
    pub lang: Lang,
    /// Relative to the manifest's folder, like every path in it.
    pub source: String,
    pub command: String,
    pub workdir: String,
    /// Relative to `workdir`.
    pub watch: Vec<String>,
    pub route: String,
}

pub fn add(text: &str, e: &Entry) -> Result<String> {
    let mut doc: DocumentMut = text.parse()?;

    let components = doc
        .entry("components")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| anyhow!("`components` is not a table"))?;
    // Right after the last component rather than at the end of the file.
    let last = components
        .iter()
        .filter_map(|(_, item)| item.as_table()?.position())
        .max();
    let mut build = InlineTable::new();
    build.insert("command", e.command.as_str().into());
    build.insert("workdir", e.workdir.as_str().into());
    build.insert(
        "watch",
        Value::Array(e.watch.iter().map(String::as_str).collect::<Array>()),
    );
    let mut component = Table::new();
    component.insert("source", value(&e.source));
    component.insert("build", value(build));
    component.set_position(last);
    component
        .decor_mut()
        .set_prefix(format!("\n# added by `nebula new {} {}`\n", e.lang, e.name));
    components.insert(e.name, Item::Table(component));

    let routes = doc
        .entry("routes")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| anyhow!("`routes` is not an array of [[routes]] tables"))?;
    let mut route = Table::new();
    route.insert("path", value(&e.route));
    route.insert("component", value(e.name));
    routes.push(route);

    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            name: "hello",
            lang: Lang::Rust,
            source: "hello/hello.wasm".into(),
            command: "cargo build --release --target wasm32-wasip2 && cp \"${CARGO_TARGET_DIR:-target}/x.wasm\" hello.wasm".into(),
            workdir: "hello".into(),
            watch: vec!["src".into(), "Cargo.toml".into()],
            route: "/hello".into(),
        }
    }

    #[test]
    fn keeps_every_line_of_the_manifest_and_adds_after_the_last_component() {
        let original = include_str!("../../../app.toml");
        let edited = add(original, &entry()).unwrap();
        // Only lines are added: every original line (comments included) is
        // still there, in order.
        let mut added = Vec::new();
        let mut orig = original.lines().peekable();
        for line in edited.lines() {
            if orig.peek() == Some(&line) {
                orig.next();
            } else {
                added.push(line);
            }
        }
        assert_eq!(orig.next(), None, "an original line was changed or lost");
        assert!(added.contains(&"[components.hello]"), "{added:?}");
        assert!(added.contains(&"component = \"hello\""), "{added:?}");
        // The component sits with the others, before the reads.
        let at = |s: &str| edited.find(s).unwrap();
        assert!(at("[components.submit]") < at("[components.hello]"));
        assert!(at("[components.hello]") < at("[reads.newest]"));
        assert!(edited
            .trim_end()
            .ends_with("path = \"/hello\"\ncomponent = \"hello\""));

        let m =
            crate::manifest::Manifest::parse(std::path::Path::new("app.toml"), &edited).unwrap();
        assert_eq!(
            m.components["hello"].build.as_ref().unwrap().command,
            entry().command
        );
    }
}
