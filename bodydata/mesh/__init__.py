"""Mesh I/O, validation and mesh operations (edges, one rings, cotangent weights, normals, areas)."""
from bodydata.mesh.io import MeshData, read_mesh, write_mesh
from bodydata.mesh.validate import check_mesh_arrays

__all__ = ["MeshData", "read_mesh", "write_mesh", "check_mesh_arrays"]
