//! Type-checks the PostgreSQL and MySQL units against components that import what the Spin
//! SDKs import (worlds `spin-sdk-5-rdbms` and `spin-sdk-7-rdbms` in `wit/world.wit`): a
//! dummy module importing every function, wrapped as a component and instantiated, which
//! fails if an import is missing or has another type. Covers `spin:postgres@4.0.0` being
//! served by `@4.2.0`, and sync and async lowering.

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
