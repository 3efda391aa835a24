use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use nebula_spin_interfaces::*;

struct Host { spin: SpinState }
impl SpinView for Host { fn spin(&mut self) -> &mut SpinState { &mut self.spin } }

#[tokio::test]
async fn scratch() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::default();
    let component = Component::from_file(&engine, "/tmp/e2e-guest/target/wasm32-wasip2/release/e2e_guest.wasm").unwrap();
    for (name, _) in component.component_type().imports(&engine) { eprintln!("import {name}"); }
    let mut linker = Linker::<Host>::new(&engine);
    add_to_linker(&mut linker).unwrap();
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let mut variables = AppVariables::new();
    variables.insert("greeting", AppVariable { default: Some("hi".into()), ..Default::default() });
    let resources = Arc::new(SpinResources::new(ResourceOptions {
        key_value: HashMap::from([("default".into(), dir.path().join("kv.db"))]),
        sqlite: HashMap::from([("default".into(), dir.path().join("db.sqlite"))]),
        variables, environment: Some(HashMap::new()),
    }).unwrap());
    let grants = Arc::new(ComponentGrants {
        key_value_stores: vec!["default".into(), "unbacked".into()],
        sqlite_databases: vec!["default".into()],
        variables: BTreeMap::from([("message".into(), "{{ greeting }} there".into())]),
    });
    for round in 0..2 {
        let mut store = Store::new(&engine, Host { spin: SpinState::new(resources.clone(), grants.clone()) });
        let instance = linker.instantiate_async(&mut store, &component).await.unwrap();
        let run = instance.get_typed_func::<(), (Vec<String>,)>(&mut store, "run").unwrap();
        let (out,) = store.run_concurrent(async |acc| run.call_concurrent(acc, ()).await).await.unwrap().unwrap();
        eprintln!("--- round {round}");
        for line in out { eprintln!("{line}"); }
    }
}
