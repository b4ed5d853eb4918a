//! Generates the etcd KV client from `proto/etcd_kv.proto` with protox (a protobuf
//! compiler in Rust), so building needs no system `protoc`: the same route as the
//! server crate's build script.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/etcd_kv.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
