//! Print the wire types' JSON Schema (`hvstat_core::wire::schema_json`): scripts/gen_wire.py runs
//! this to rewrite rust/hvstat-core/wire-schema.json and python/hvstat/wire.py.

fn main() {
    print!("{}", hvstat_core::wire::schema_json());
}
