//! The network's input for one picture: what [`crate::preprocess::to_input`] makes and the
//! extractor runs. Defined here, below both, so that the model does not depend on the
//! preprocessing that feeds it (preprocessing reads the model's manifest).

/// The network input for one picture, laid out as the model's manifest says.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// Four dimensions, batch (1) first.
    pub shape: [usize; 4],
    pub data: TensorData,
}

/// Element storage of an [`InputTensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

impl InputTensor {
    /// The elements as little-endian bytes (for reference dumps compared with onnxruntime).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::U8(v) => v.clone(),
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}
