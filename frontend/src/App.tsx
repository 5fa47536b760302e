// Providers and routes. Signed out: the sign-in screen; no project yet: create one; else the dashboard.
import { Center, Loader, MantineProvider, createTheme } from '@mantine/core';
import { Notifications } from '@mantine/notifications';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense, useState } from 'react';
import { BrowserRouter, Navigate, Route, Routes } from 'react-router';
import { AuthProvider, useAuth } from './auth/AuthContext';
import { Layout } from './components/Layout';
import './i18n';
import { CreateProject } from './pages/CreateProject';
import { SignIn } from './pages/SignIn';
import { ProjectProvider, useProject } from './project/ProjectContext';

// pages load on first visit, so the sign-in screen does not wait for the charts
const Chat = lazy(() => import('./pages/Chat').then((m) => ({ default: m.Chat })));
const Compare = lazy(() => import('./pages/Compare').then((m) => ({ default: m.Compare })));
const DatasetDetail = lazy(() => import('./pages/DatasetDetail').then((m) => ({ default: m.DatasetDetail })));
const Evaluate = lazy(() => import('./pages/Evaluate').then((m) => ({ default: m.Evaluate })));
const NewEval = lazy(() => import('./pages/NewEval').then((m) => ({ default: m.NewEval })));
const Datasets = lazy(() => import('./pages/Datasets').then((m) => ({ default: m.Datasets })));
const Models = lazy(() => import('./pages/Models').then((m) => ({ default: m.Models })));
const NewRun = lazy(() => import('./pages/NewRun').then((m) => ({ default: m.NewRun })));
const Overview = lazy(() => import('./pages/Overview').then((m) => ({ default: m.Overview })));
const Export = lazy(() => import('./pages/Export').then((m) => ({ default: m.Export })));
const Run = lazy(() => import('./pages/Run').then((m) => ({ default: m.Run })));
const Runs = lazy(() => import('./pages/Runs').then((m) => ({ default: m.Runs })));
const Settings = lazy(() => import('./pages/Settings').then((m) => ({ default: m.Settings })));

const theme = createTheme({ primaryColor: 'indigo', defaultRadius: 'md' });

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        refetchOnWindowFocus: false,
        retry: (count, error) => count < 2 && !(error && 'status' in error && Number((error as { status: number }).status) < 500),
      },
    },
  });
}

function Dashboard() {
  const { projectId, loading } = useProject();
  if (loading) {
    return (
      <Center h="100vh">
        <Loader />
      </Center>
    );
  }
  return (
    <Layout>
      {!projectId ? (
        <CreateProject />
      ) : (
        <Suspense
          fallback={
            <Center h={200}>
              <Loader />
            </Center>
          }
        >
        <Routes>
          <Route path="/" element={<Overview />} />
          <Route path="/runs" element={<Runs />} />
          <Route path="/runs/new" element={<NewRun />} />
          <Route path="/runs/:jobId" element={<Run />} />
          <Route path="/compare" element={<Compare />} />
          <Route path="/datasets" element={<Datasets />} />
          <Route path="/datasets/:datasetId" element={<DatasetDetail />} />
          <Route path="/models" element={<Models />} />
          <Route path="/chat" element={<Chat />} />
          <Route path="/evaluate" element={<Evaluate />} />
          <Route path="/evaluate/new" element={<NewEval />} />
          <Route path="/export" element={<Export />} />
          <Route path="/settings" element={<Settings />} />
          <Route path="/signin" element={<Navigate to="/" replace />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
        </Suspense>
      )}
    </Layout>
  );
}

function Gate() {
  const { token } = useAuth();
  if (!token) return <SignIn />;
  return (
    <ProjectProvider>
      <Dashboard />
    </ProjectProvider>
  );
}

export function Providers({ children, client, env }: { children: React.ReactNode; client?: QueryClient; env?: 'test' }) {
  const [queryClient] = useState(() => client ?? makeQueryClient());
  return (
    <MantineProvider theme={theme} env={env}>
      <Notifications position="top-right" />
      <QueryClientProvider client={queryClient}>
        <AuthProvider>{children}</AuthProvider>
      </QueryClientProvider>
    </MantineProvider>
  );
}

export default function App() {
  return (
    <Providers>
      <BrowserRouter>
        <Gate />
      </BrowserRouter>
    </Providers>
  );
}
