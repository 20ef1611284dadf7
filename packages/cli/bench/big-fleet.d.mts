export function bigFleetTrail(
  dir: string,
  options?: { hosts?: number; failAt?: number },
): Promise<{ trailDir: string; fleetId: string; status: string }>;
