//! Generates the gRPC code from `proto/*.proto` with protox (a protobuf compiler in
//! Rust), so building needs no system `protoc`. The encoded descriptor set is kept for
//! the gRPC reflection service.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/elastickv.proto", "proto/cluster.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("elastickv_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;

    // The seed system's wire contract as a test fixture: a client generated from it
    // talks to this server in tests/seed_wire.rs.
    let fixture = "tests/fixtures/seed_wire.proto";
    println!("cargo:rerun-if-changed={fixture}");
    let fixture_out = out_dir.join("seed_fixture");
    std::fs::create_dir_all(&fixture_out)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .out_dir(&fixture_out)
        .compile_fds(protox::compile([fixture], ["tests/fixtures"])?)?;
    Ok(())
}
