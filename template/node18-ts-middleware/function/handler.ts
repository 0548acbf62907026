// Your function: an Express middleware. The template parses JSON bodies; answer with res.
import type { Request, Response } from 'express';

export default function handler(req: Request, res: Response): void {
  res.status(200).json({ received: req.body ?? null, path: req.path });
}
