//! Type-checks `add_to_linker` against components that import what the Spin SDKs import:
//! a component is generated from each guest world in `wit/world.wit` (a module that imports
//! every function, wrapped as a component) and pre-instantiated, which fails if any import
//! is missing or has another type. Covers `spin:sqlite@3.0.0` being served by `@3.1.0`, and
//! both sync and async lowering of the 3.x imports.

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

use nebula_spin_interfaces::*;

struct Host {
    spin: SpinState,
}

impl SpinView for Host {
    fn spin(&mut self) -> &mut SpinState {
        &mut self.spin
    }
}

fn guest(engine: &Engine, world: &str, abi: LiftLowerAbi) -> Component {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/wit"))
        .unwrap();
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    let mut module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(abi));
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    Component::new(engine, bytes).unwrap()
}

#[tokio::test]
async fn spin_sdk_imports_link_and_instantiate() {
    let engine = Engine::default();
    let mut linker = Linker::<Host>::new(&engine);
    add_to_linker(&mut linker).unwrap();

    for (world, abi) in [
        ("spin-sdk-5", LiftLowerAbi::Sync),
        ("spin-sdk-7", LiftLowerAbi::Sync),
        ("spin-sdk-7", LiftLowerAbi::AsyncCallback),
    ] {
        let component = guest(&engine, world, abi);
        let imports: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        assert!(!imports.is_empty(), "{world}: no imports");
        let pre = linker
            .instantiate_pre(&component)
            .unwrap_or_else(|e| panic!("{world} ({abi:?}) {imports:?}: {e:?}"));

        let resources = std::sync::Arc::new(SpinResources::new(Default::default()).unwrap());
        let spin = SpinState::new(resources, Default::default());
        let mut store = Store::new(&engine, Host { spin });
        pre.instantiate_async(&mut store)
            .await
            .unwrap_or_else(|e| panic!("{world} ({abi:?}): {e:?}"));
    }
}

/// `Linker::define_unknown_imports_as_traps` (which a host may use to stub Spin interfaces it
/// lacks) matches import names exactly; `spin:sqlite/sqlite@3.0.0` must therefore be
/// defined under its own name, not only reachable by semver from `@3.1.0`.
#[test]
fn sqlite_3_0_is_defined_by_name() {
    let engine = Engine::default();
    let mut linker = Linker::<Host>::new(&engine);
    add_to_linker(&mut linker).unwrap();
    let mut inst = linker.instance("spin:sqlite/sqlite@3.0.0").unwrap();
    let again = inst.func_wrap("[method]connection.changes", |_, (): ()| Ok(()));
    assert!(
        again.is_err(),
        "[method]connection.changes should already be defined"
    );
}

#[test]
fn guest_worlds_import_what_the_sdks_import() {
    let engine = Engine::default();
    let imports = |world| -> Vec<String> {
        let mut names: Vec<String> = guest(&engine, world, LiftLowerAbi::Sync)
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        imports("spin-sdk-5"),
        [
            "fermyon:spin/key-value@2.0.0",
            "fermyon:spin/sqlite@2.0.0",
            "fermyon:spin/variables@2.0.0",
            "spin:sqlite/sqlite@3.0.0",
        ]
    );
    assert_eq!(
        imports("spin-sdk-7"),
        [
            "spin:key-value/key-value@3.0.0",
            "spin:sqlite/sqlite@3.1.0",
            "spin:variables/variables@3.0.0",
        ]
    );
}

// Type-checks the PostgreSQL and MySQL units against components that import what the Spin
// SDKs import (worlds `spin-sdk-5-rdbms` and `spin-sdk-7-rdbms` in `wit/world.wit`): a
// dummy module importing every function, wrapped as a component and instantiated, which
// fails if an import is missing or has another type. Covers `spin:postgres@4.0.0` being
// served by `@4.2.0`, and sync and async lowering.
#[tokio::test]
async fn spin_sdk_database_imports_link_and_instantiate() {
    let engine = Engine::default();
    let mut linker = Linker::<Host>::new(&engine);
    add_to_linker(&mut linker).unwrap();

    for (world, abi, expected) in [
        (
            "spin-sdk-5-rdbms",
            LiftLowerAbi::Sync,
            &[
                "fermyon:spin/mysql@2.0.0",
                "fermyon:spin/postgres@2.0.0",
                "fermyon:spin/rdbms-types@2.0.0",
                "spin:postgres/postgres@3.0.0",
                "spin:postgres/postgres@4.0.0",
            ][..],
        ),
        (
            "spin-sdk-7-rdbms",
            LiftLowerAbi::Sync,
            &["spin:mysql/mysql@3.0.0", "spin:postgres/postgres@4.2.0"][..],
        ),
        (
            "spin-sdk-7-rdbms",
            LiftLowerAbi::AsyncCallback,
            &["spin:mysql/mysql@3.0.0", "spin:postgres/postgres@4.2.0"][..],
        ),
    ] {
        let component = guest(&engine, world, abi);
        let mut imports: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        imports.sort();
        assert_eq!(imports, expected, "{world}");
        let pre = linker
            .instantiate_pre(&component)
            .unwrap_or_else(|e| panic!("{world} ({abi:?}) {imports:?}: {e:?}"));
        let resources = std::sync::Arc::new(SpinResources::new(Default::default()).unwrap());
        let spin = SpinState::new(resources, Default::default());
        let mut store = Store::new(&engine, Host { spin });
        pre.instantiate_async(&mut store)
            .await
            .unwrap_or_else(|e| panic!("{world} ({abi:?}): {e:?}"));
    }
}

/// As for spin:sqlite@3.0.0: the older 4.x names are defined explicitly, for exact-name
/// lookups (`Linker::define_unknown_imports_as_traps`).
#[test]
fn postgres_4_0_and_4_1_are_defined_by_name() {
    let engine = Engine::default();
    let mut linker = Linker::<Host>::new(&engine);
    add_to_linker(&mut linker).unwrap();
    for name in [
        "spin:postgres/postgres@4.0.0",
        "spin:postgres/postgres@4.1.0",
    ] {
        let mut inst = linker.instance(name).unwrap();
        let again = inst.func_wrap("[method]connection.query", |_, (): ()| Ok(()));
        assert!(again.is_err(), "{name}: query should already be defined");
    }
}

// Type-checks the outbound Redis and MQTT interfaces in `add_to_linker` against components
// that import them as the Spin SDKs do (`spin-sdk-5-redis-mqtt`, `spin-sdk-7-redis-mqtt`
// in `wit/world.wit`): a core module importing every function, wrapped as a component and
// instantiated, which fails if an import is missing or has another type. The 3.0 imports
// are lowered both synchronously and asynchronously.
#[tokio::test]
async fn redis_and_mqtt_imports_link_and_instantiate() {
    let engine = Engine::default();
    let mut linker = Linker::<Host>::new(&engine);
    add_to_linker(&mut linker).unwrap();

    for (world, abi, want) in [
        (
            "spin-sdk-5-redis-mqtt",
            LiftLowerAbi::Sync,
            ["fermyon:spin/mqtt@2.0.0", "fermyon:spin/redis@2.0.0"],
        ),
        (
            "spin-sdk-7-redis-mqtt",
            LiftLowerAbi::Sync,
            ["spin:mqtt/mqtt@3.0.0", "spin:redis/redis@3.0.0"],
        ),
        (
            "spin-sdk-7-redis-mqtt",
            LiftLowerAbi::AsyncCallback,
            ["spin:mqtt/mqtt@3.0.0", "spin:redis/redis@3.0.0"],
        ),
    ] {
        let component = guest(&engine, world, abi);
        let mut imports: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        imports.sort();
        assert_eq!(imports, want, "{world}");
        let pre = linker
            .instantiate_pre(&component)
            .unwrap_or_else(|e| panic!("{world} ({abi:?}) {imports:?}: {e:?}"));
        let resources = std::sync::Arc::new(SpinResources::new(Default::default()).unwrap());
        let spin = SpinState::new(resources, Default::default());
        let mut store = Store::new(&engine, Host { spin });
        pre.instantiate_async(&mut store)
            .await
            .unwrap_or_else(|e| panic!("{world} ({abi:?}): {e:?}"));
    }
}
