"""Mesh I/O, validation and mesh geometry: topology, cotangent weights, normals, areas (re-exported here); alignment,
rotations, closest points, subdivision, ray casting, point clouds and the virtual scanner in their own modules
(bodydata.mesh.alignment, .rotations, .closest, .subdivision, .raycast, .pointcloud, .scanner)."""
from bodydata.mesh.areas import face_areas, surface_area, vertex_areas
from bodydata.mesh.cotangent import cotangent_laplacian, cotangent_weights, cotangents
from bodydata.mesh.io import MeshData, read_mesh, write_mesh
from bodydata.mesh.normals import face_normals, vertex_normals
from bodydata.mesh.topology import (
    adjacency_matrix,
    boundary_edges,
    check_manifold,
    connected_components,
    edges,
    is_edge_manifold,
    is_vertex_manifold,
    is_watertight,
    one_ring,
)
from bodydata.mesh.validate import check_mesh_arrays

__all__ = [
    "MeshData",
    "read_mesh",
    "write_mesh",
    "check_mesh_arrays",
    "edges",
    "one_ring",
    "adjacency_matrix",
    "boundary_edges",
    "is_edge_manifold",
    "is_vertex_manifold",
    "is_watertight",
    "connected_components",
    "check_manifold",
    "cotangents",
    "cotangent_weights",
    "cotangent_laplacian",
    "face_normals",
    "vertex_normals",
    "face_areas",
    "vertex_areas",
    "surface_area",
]
