//! `edge-tl devices`: the cameras V4L2 sees and what each can deliver.

use std::process::ExitCode;

use clap::Args;

use edge_tl::source::v4l::{list_cameras, negotiate::describe_modes, negotiate::PixelFormat};

#[derive(Debug, Args)]
pub struct Flags {
    /// One JSON array instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let json = flags.json;
    let cameras = list_cameras();
    if json {
        let list: Vec<_> = cameras
            .iter()
            .map(|c| {
                let modes: Vec<_> = c
                    .modes
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "format": String::from_utf8_lossy(&m.fourcc),
                            "readable": PixelFormat::from_fourcc(m.fourcc).is_some(),
                            "width": m.size.width,
                            "height": m.size.height,
                            "fps": m.fps,
                        })
                    })
                    .collect();
                serde_json::json!({"path": c.path, "name": c.name, "modes": modes})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if cameras.is_empty() {
        println!("{}", edge_tl::source::v4l::cameras_hint());
        return Ok(ExitCode::SUCCESS);
    }
    for c in &cameras {
        println!(
            "{} ({}): use --source v4l:{}",
            c.path.display(),
            c.name,
            c.path.display()
        );
        println!("{}", describe_modes(&c.modes));
    }
    Ok(ExitCode::SUCCESS)
}
