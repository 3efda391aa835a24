//! Spin variables: application variables resolved once at load, component variables as
//! templates over them, and the `fermyon:spin/variables@2.0.0` / `spin:variables@3.0.0` hosts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use wasmtime::component::{Accessor, HasData, HasSelf, Linker};

use crate::bindings::fermyon::spin::variables as v2;
use crate::bindings::spin::variables::variables as v3;
use crate::unit::{granted_list, interface_of, InstanceContext};
use crate::HostUnit;

/// Prefix of the environment variables that override application variables, as in Spin.
const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 2] = ["fermyon:spin/variables", "spin:variables/variables"];

/// The variables unit, configured for one app: its variables with their values.
pub struct Variables {
    resolved: ResolvedVariables,
}

/// What the app gives the variables unit.
#[derive(Debug, Default)]
pub struct VariablesConfig {
    /// The manifest's `[variables]`.
    pub variables: AppVariables,
    /// Where `SPIN_VARIABLE_*` overrides are read: `None` for the process environment, or a
    /// fixed map (for tests, or a host that reads a `.env` file itself).
    pub environment: Option<HashMap<String, String>>,
}

/// What one component may read: `[component.<id>.variables]`, name → template such as
/// `"{{ greeting }}"`.
#[derive(Clone, Debug, Default)]
pub struct VariablesGrants {
    pub templates: BTreeMap<String, String>,
}

/// One component's variables, as templates over the app's.
pub struct VariablesComponent {
    unit: Arc<Variables>,
    templates: BTreeMap<String, String>,
}

impl VariablesComponent {
    /// Without checking the templates: a bad one answers `other` when read. For hosts (and
    /// tests) that check them on their own, or not at all.
    pub(crate) fn unchecked(unit: Arc<Variables>, grants: VariablesGrants) -> Self {
        Self {
            unit,
            templates: grants.templates,
        }
    }
}

/// One instance's view of its component's variables; nothing of its own to open.
pub struct VariablesInstance {
    component: Arc<VariablesComponent>,
}

impl Variables {
    /// Renders a template over the application variables, e.g. `"https://{{ host }}"`; for
    /// the manifest fields where Spin allows them, such as `allowed_outbound_hosts`.
    pub fn render(&self, template: &str) -> anyhow::Result<String> {
        self.resolved.render(template)
    }

    /// Checks a component's templates: they must parse and name only application
    /// variables.
    pub fn check(&self, grants: &VariablesGrants) -> anyhow::Result<()> {
        self.resolved.check_component(&grants.templates)
    }
}

impl HostUnit for Variables {
    type AppConfig = VariablesConfig;
    type Grants = VariablesGrants;
    type Component = VariablesComponent;
    type Instance = VariablesInstance;
    type Data = HasSelf<VariablesInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        v3::add_to_linker::<T, Self::Data>(linker, get)?;
        Ok(())
    }

    /// Resolves every application variable, once: `SPIN_VARIABLE_<NAME>` from the
    /// environment, else its default. Fails if one has no value (required, and no
    /// `SPIN_VARIABLE_*` is set), has an invalid name, or is both required and defaulted;
    /// the message names it.
    fn configure_app(config: VariablesConfig) -> anyhow::Result<Self> {
        let resolved = match &config.environment {
            Some(env) => ResolvedVariables::resolve(&config.variables, &|k| env.get(k).cloned()),
            None => ResolvedVariables::resolve(&config.variables, &|k| std::env::var(k).ok()),
        }?;
        Ok(Self { resolved })
    }

    /// Fails on a template that does not parse or names something that is not an
    /// application variable.
    fn configure_component(
        self: &Arc<Self>,
        grants: VariablesGrants,
    ) -> anyhow::Result<VariablesComponent> {
        self.check(&grants)?;
        Ok(VariablesComponent::unchecked(self.clone(), grants))
    }

    fn prepare(component: &Arc<VariablesComponent>, _: &InstanceContext) -> VariablesInstance {
        VariablesInstance {
            component: component.clone(),
        }
    }

    fn serves(import: &str, grants: &VariablesGrants) -> Option<String> {
        INTERFACES.contains(&interface_of(import)).then(|| {
            let names: Vec<&str> = grants.templates.keys().map(String::as_str).collect();
            format!("variables: {}", granted_list(&names))
        })
    }
}

/// The application's `[variables]` table: name → declaration.
#[derive(Clone, Debug, Default)]
pub struct AppVariables(BTreeMap<String, AppVariable>);

/// One entry of the application's `[variables]` table.
#[derive(Clone, Default)]
pub struct AppVariable {
    pub default: Option<String>,
    pub required: bool,
    /// Spin's marker for values that must not be shown; nothing here ever prints a value.
    pub secret: bool,
}

impl fmt::Debug for AppVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = match (&self.default, self.secret) {
            (Some(_), true) => Some("<secret>"),
            (Some(value), false) => Some(value.as_str()),
            (None, _) => None,
        };
        f.debug_struct("AppVariable")
            .field("default", &default)
            .field("required", &self.required)
            .field("secret", &self.secret)
            .finish()
    }
}

impl AppVariables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a variable. Names are checked when the app is configured
    /// ([`Variables::configure_app`]), so that every problem in a manifest is reported the
    /// same way.
    pub fn insert(&mut self, name: impl Into<String>, variable: AppVariable) {
        self.0.insert(name.into(), variable);
    }

    pub fn get(&self, name: &str) -> Option<&AppVariable> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &AppVariable)> {
        self.0.iter().map(|(name, var)| (name.as_str(), var))
    }
}

impl FromIterator<(String, AppVariable)> for AppVariables {
    fn from_iter<I: IntoIterator<Item = (String, AppVariable)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Application variables with their values fixed at load.
///
/// Resolving once means a changed environment needs a restart, as with `spin up`; in exchange
/// a request never touches the environment and a missing value fails the load, not a request.
#[derive(Default)]
pub(crate) struct ResolvedVariables(HashMap<String, String>);

impl ResolvedVariables {
    pub(crate) fn resolve(
        vars: &AppVariables,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for (name, var) in vars.iter() {
            validate_name(name).map_err(|reason| {
                anyhow!("application variable {name:?} has an invalid name: {reason}")
            })?;
            // Spin's manifest rule: a variable is either required or has a default.
            if var.required == var.default.is_some() {
                bail!(
                    "application variable {name:?} must be `required` or have a `default` \
                     (exactly one of the two)"
                );
            }
            let from_env = env(&env_key(name));
            match from_env.or_else(|| var.default.clone()) {
                Some(value) => {
                    values.insert(name.to_string(), value);
                }
                None => missing.push(name),
            }
        }
        match missing.as_slice() {
            [] => Ok(Self(values)),
            [name] => bail!(
                "required application variable {name:?} has no value: set the environment \
                 variable {} or give it a default",
                env_key(name)
            ),
            names => bail!(
                "required application variables have no value: {}",
                names
                    .iter()
                    .map(|name| format!("{name:?} (set {})", env_key(name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Checks a component's `[component.x.variables]` table against the application's
    /// variables, so that a bad template fails the load rather than a request.
    pub(crate) fn check_component(
        &self,
        templates: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        for (name, template) in templates {
            validate_name(name)
                .map_err(|reason| anyhow!("component variable {name:?}: {reason}"))?;
            self.render(template)
                .with_context(|| format!("component variable {name:?}"))?;
        }
        Ok(())
    }

    pub(crate) fn render(&self, template: &str) -> anyhow::Result<String> {
        let mut out = String::with_capacity(template.len());
        for part in parse_template(template)? {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match self.0.get(name) {
                    Some(value) => out.push_str(value),
                    None => bail!("refers to {name:?}, which is not an application variable"),
                },
            }
        }
        Ok(out)
    }
}

/// The environment variable that gives application variable `name` its value.
pub fn env_key(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())
}

/// Spin's rule for variable names, chosen so that a name maps one-to-one onto an environment
/// variable or a file name: lower-case ASCII letters, digits and single underscores, starting
/// with a letter and not ending with an underscore.
fn validate_name(name: &str) -> Result<(), String> {
    let Some(first) = name.bytes().next() else {
        return Err("a variable name must not be empty".into());
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {bad:?}: variable names may contain only lower-case letters, \
             digits and underscores"
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("a variable name must start with a lower-case letter".into());
    }
    if name.ends_with('_') {
        return Err("a variable name must end with a letter or a digit".into());
    }
    if name.contains("__") {
        return Err("a variable name must not contain two underscores in a row".into());
    }
    Ok(())
}

enum Part<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

/// Splits `prefix-{{ name }}-suffix` into literal text and variable references. There is no
/// escape for a literal `{{`, as in Spin.
fn parse_template(template: &str) -> anyhow::Result<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find("{{") {
            Some(0) => {
                let Some(end) = rest[2..].find("}}") else {
                    bail!("template {template:?} has a `{{{{` without a matching `}}}}`");
                };
                parts.push(Part::Variable(rest[2..2 + end].trim()));
                rest = &rest[2 + end + 2..];
            }
            Some(start) => {
                parts.push(Part::Literal(&rest[..start]));
                rest = &rest[start..];
            }
            None => {
                parts.push(Part::Literal(rest));
                rest = "";
            }
        }
    }
    Ok(parts)
}

/// The outcome of a guest's `get`, shared by both interface versions.
#[derive(Debug, PartialEq)]
pub(crate) enum GetError {
    InvalidName(String),
    Undefined(String),
    Other(String),
}

impl VariablesInstance {
    pub(crate) fn variable(&self, name: &str) -> Result<String, GetError> {
        validate_name(name)
            .map_err(|reason| GetError::InvalidName(format!("{name:?}: {reason}")))?;
        let component = &self.component;
        let template = component.templates.get(name).ok_or_else(|| {
            GetError::Undefined(format!(
                "no variable {name:?} is defined for this component"
            ))
        })?;
        // Templates were checked at load by `configure_component`; one that was not checked
        // and is bad is the host's problem, reported as `other`.
        component
            .unit
            .render(template)
            .map_err(|err| GetError::Other(format!("variable {name:?}: {err:#}")))
    }
}

impl From<GetError> for v2::Error {
    fn from(err: GetError) -> Self {
        match err {
            GetError::InvalidName(msg) => Self::InvalidName(msg),
            GetError::Undefined(msg) => Self::Undefined(msg),
            GetError::Other(msg) => Self::Other(msg),
        }
    }
}

impl From<GetError> for v3::Error {
    fn from(err: GetError) -> Self {
        match err {
            GetError::InvalidName(msg) => Self::InvalidName(msg),
            GetError::Undefined(msg) => Self::Undefined(msg),
            GetError::Other(msg) => Self::Other(msg),
        }
    }
}

impl v2::Host for VariablesInstance {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(self.variable(&name).map_err(Into::into))
    }
}

impl v3::Host for VariablesInstance {}

impl<T: Send> v3::HostWithStore<T> for HasSelf<VariablesInstance> {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, v3::Error>> {
        Ok(accessor.with(|mut access| access.get().variable(&name).map_err(Into::into)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(entries: &[(&str, Option<&str>, bool)]) -> AppVariables {
        entries
            .iter()
            .map(|(name, default, required)| {
                (
                    name.to_string(),
                    AppVariable {
                        default: default.map(str::to_string),
                        required: *required,
                        secret: false,
                    },
                )
            })
            .collect()
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn names_follow_spins_rules() {
        for good in ["a", "abc", "a1b2", "a_1", "api_key_2"] {
            validate_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y", "Greeting",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn templates_split_into_parts() {
        let render = |t: &str| {
            parse_template(t)
                .unwrap()
                .into_iter()
                .map(|p| match p {
                    Part::Literal(l) => format!("L({l})"),
                    Part::Variable(v) => format!("V({v})"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(render(""), "");
        assert_eq!(render("plain"), "L(plain)");
        assert_eq!(render("{{ name }}"), "V(name)");
        assert_eq!(
            render("prefix-{{name}}-suffix"),
            "L(prefix-) V(name) L(-suffix)"
        );
        assert_eq!(render("{{ a }}{{ b }}"), "V(a) V(b)");
        assert!(parse_template("{{ open").is_err());
        assert!(parse_template("ok {{ a }} then {{ open").is_err());
    }

    #[test]
    fn defaults_and_environment_overrides() {
        let resolved = ResolvedVariables::resolve(
            &vars(&[
                ("greeting", Some("hello"), false),
                ("name", Some("world"), false),
            ]),
            &env(&[("SPIN_VARIABLE_NAME", "nebula")]),
        )
        .unwrap();
        assert_eq!(resolved.render("{{ greeting }}").unwrap(), "hello");
        assert_eq!(
            resolved.render("{{greeting}}, {{ name }}!").unwrap(),
            "hello, nebula!"
        );
        assert_eq!(
            resolved.render("prefix-{{ name }}").unwrap(),
            "prefix-nebula"
        );
        assert!(resolved.render("{{ nope }}").is_err());
    }

    #[test]
    fn required_variable_without_value_names_it() {
        let err = ResolvedVariables::resolve(&vars(&[("api_key", None, true)]), &env(&[]))
            .err()
            .expect("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("\"api_key\""), "{msg}");
        assert!(msg.contains("SPIN_VARIABLE_API_KEY"), "{msg}");

        let ok = ResolvedVariables::resolve(
            &vars(&[("api_key", None, true)]),
            &env(&[("SPIN_VARIABLE_API_KEY", "s3cret")]),
        )
        .unwrap();
        assert_eq!(ok.render("{{ api_key }}").unwrap(), "s3cret");
    }

    #[test]
    fn several_missing_variables_are_all_named() {
        let err = ResolvedVariables::resolve(
            &vars(&[("one", None, true), ("two", None, true)]),
            &env(&[]),
        )
        .err()
        .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("\"one\"") && msg.contains("\"two\""), "{msg}");
    }

    #[test]
    fn bad_declarations_are_rejected() {
        let err = ResolvedVariables::resolve(&vars(&[("Bad", Some("x"), false)]), &env(&[]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"Bad\""), "{err}");
        let err = ResolvedVariables::resolve(&vars(&[("both", Some("x"), true)]), &env(&[]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("exactly one"), "{err}");
        let err = ResolvedVariables::resolve(&vars(&[("neither", None, false)]), &env(&[]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"neither\""), "{err}");
    }

    #[test]
    fn component_templates_are_checked() {
        let resolved =
            ResolvedVariables::resolve(&vars(&[("greeting", Some("hi"), false)]), &env(&[]))
                .unwrap();
        let templates = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        resolved
            .check_component(&templates(&[("message", "{{ greeting }} there")]))
            .unwrap();
        let err = resolved
            .check_component(&templates(&[("message", "{{ missing }}")]))
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("\"message\"") && msg.contains("\"missing\""),
            "{msg}"
        );
        let err = resolved
            .check_component(&templates(&[("Message", "x")]))
            .unwrap_err();
        assert!(format!("{err:#}").contains("\"Message\""));
        assert!(resolved
            .check_component(&templates(&[("m", "{{ greeting")]))
            .is_err());
    }

    #[test]
    fn secret_defaults_are_not_printed() {
        let var = AppVariable {
            default: Some("hunter2".into()),
            required: false,
            secret: true,
        };
        assert!(!format!("{var:?}").contains("hunter2"));
    }
}
