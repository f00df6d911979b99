//! `semdex mcp`: the Model Context Protocol server over stdin and stdout, for desktop agents
//! that start it as a child process. Logs and progress go to stderr: stdout carries only the
//! protocol.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use semdex::api::{ApiConfig, AppState};
use semdex::queue::{EmbedQueue, QueueOptions};
use semdex::service::{Service, ServiceOptions};

use super::{EngineArgs, GlobalArgs};

#[derive(Args, Debug)]
pub struct McpArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(global: &GlobalArgs, args: McpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("semdex-mcp")
        .build()?;
    // The model and the index load before the session starts: an agent's first call finds
    // them ready.
    let opened = args.engine.open(global)?;
    let queue = EmbedQueue::start(opened.default.encoder().clone(), QueueOptions::default())
        .context("cannot start the batching thread")?;
    let collections = opened
        .collections()
        .context("cannot read the collections")?;
    let state = AppState::new(ApiConfig::default());
    state.set_ready(Service::new(
        Arc::new(collections),
        queue,
        ServiceOptions::default(),
    ));
    tracing::info!("MCP server ready on stdio");
    runtime.block_on(async {
        semdex::mcp::serve_stdio(state.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        // The client closed the session: save what makes the next start fast.
        state
            .service()
            .map_err(|e| anyhow::anyhow!(e.message))?
            .shutdown()
            .await
            .context("saving the index")
    })
}
