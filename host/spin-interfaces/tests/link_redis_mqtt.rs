//! Type-checks the outbound Redis and MQTT interfaces in `add_to_linker` against components
//! that import them as the Spin SDKs do (`spin-sdk-5-redis-mqtt`, `spin-sdk-7-redis-mqtt`
//! in `wit/world.wit`): a core module importing every function, wrapped as a component and
//! instantiated, which fails if an import is missing or has another type. The 3.0 imports
//! are lowered both synchronously and asynchronously.

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
