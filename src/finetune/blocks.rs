//! Where to cut a backbone into a frozen prefix and a trained rest: by its blocks, which the
//! Coral MobileNet exports name in their TensorFlow scopes (`MobilenetV2/expanded_conv_15/...`).
//! A block is every convolution sharing the first two scope parts; the last one before the
//! classifier (`Conv_1`, the final 1x1 convolution) is always trained, and `--unfreeze N`
//! adds the N inverted-residual blocks before it.

use crate::grad::{GradError, Net};

/// The trained part of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// The tensor where the frozen prefix ends (cached per picture).
    pub tensor: String,
    /// Names of the blocks trained, in order.
    pub blocks: Vec<String>,
    /// Their weight and bias initializers.
    pub weights: Vec<String>,
}

/// A block: every convolution sharing the first two scope parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    /// The input of its first convolution.
    pub input: String,
    pub weights: Vec<String>,
}

/// The feature extractor's blocks in graph order (convolutions after the global pooling, the
/// backbone's own classifier, are left out).
pub fn blocks(net: &Net) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for conv in net.convs().into_iter().filter(|c| !c.after_pool) {
        let scope: Vec<&str> = conv
            .name
            .split(';')
            .next()
            .unwrap_or("")
            .split('/')
            .collect();
        let name = scope[..scope.len().min(2)].join("/");
        match out.last_mut() {
            Some(last) if last.name == name => last.weights.extend(conv.weights),
            _ => out.push(Block {
                name,
                input: conv.input,
                weights: conv.weights,
            }),
        }
    }
    out
}

/// The cut that trains the final 1x1 convolution and the `unfreeze` blocks before it.
pub fn cut(net: &Net, unfreeze: usize) -> Result<Cut, GradError> {
    let all = blocks(net);
    let n = unfreeze.saturating_add(1);
    if all.len() <= n {
        return Err(GradError::Input(format!(
            "--unfreeze {unfreeze}: the network has {} blocks before its classifier, so at most \
             --unfreeze {}",
            all.len(),
            all.len().saturating_sub(2)
        )));
    }
    let trained = &all[all.len() - n..];
    Ok(Cut {
        tensor: trained[0].input.clone(),
        blocks: trained.iter().map(|b| b.name.clone()).collect(),
        weights: trained.iter().flat_map(|b| b.weights.clone()).collect(),
    })
}
